"""Signalling: calls in progress behind the ``/ws`` WebSocket protocol (docs/protocol.md):
call presence, chat, annotation relay, stills, the shared freeze, and the hand-off of SDP
and ICE to the media plane. The endpoint that reads the socket is the web package's
(``videoassist.api.ws``)."""
