"""Signalling: the ``/ws`` WebSocket protocol (docs/protocol.md), call presence, chat,
annotation relay, and the hand-off of SDP and ICE to the media plane."""
