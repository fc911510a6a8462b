"""Annotated snapshots: the shapes drawn on live video, rendering them onto a captured
frame, sealing the images at rest, and the service that ties those together."""
