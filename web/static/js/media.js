// The participant's one RTCPeerConnection with the server (docs/protocol.md, Media).
//
// The client offers its camera and microphone; the server answers, then sends its own
// offers whenever the tracks it forwards change. Signalling messages are handled one
// at a time, in order. Candidates are gathered before a description is sent (the
// server's aiortc does not trickle either), so no ice.candidate messages are needed.

/**
 * Wait until the connection has gathered its candidates (bounded).
 * @param {RTCPeerConnection} pc
 * @param {number} timeoutMs
 */
function gathered(pc, timeoutMs = 5000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(resolve, timeoutMs);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

/**
 * Media with the server. Events: "track" (detail: {track, streams, participantId, kind}),
 * "state" (detail: the connection state).
 */
export class MediaLink extends EventTarget {
  /**
   * @param {import("./signalling.js").Signalling} signalling
   * @param {{ice_servers: RTCIceServer[], ice_transport_policy: RTCIceTransportPolicy}} ice
   */
  constructor(signalling, ice) {
    super();
    this.signalling = signalling;
    this.pc = new RTCPeerConnection({
      iceServers: ice.ice_servers,
      iceTransportPolicy: ice.ice_transport_policy,
    });
    this.queue = Promise.resolve();
    this.pc.addEventListener("track", (event) => {
      // Forwarded tracks are named p<participant>-<kind>-<n> (docs/protocol.md).
      const match = /^p(\d+)-(audio|video)-/.exec(event.track.id);
      this.dispatchEvent(new CustomEvent("track", {
        detail: {
          track: event.track,
          streams: event.streams,
          participantId: match ? Number(match[1]) : null,
          kind: event.track.kind,
        },
      }));
    });
    this.pc.addEventListener("connectionstatechange", () => {
      this.dispatchEvent(new CustomEvent("state", { detail: this.pc.connectionState }));
    });
    for (const type of ["sdp.answer", "sdp.offer"]) {
      signalling.addEventListener(type, (event) => {
        const message = /** @type {CustomEvent} */ (event).detail;
        this.queue = this.queue.then(() => this.handle(message)).catch((error) => {
          console.error("media negotiation failed", error);
        });
      });
    }
  }

  /**
   * Publish a local stream and start the connection.
   * @param {MediaStream} stream
   */
  async publish(stream) {
    for (const track of stream.getTracks()) {
      this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
    await this.pc.setLocalDescription();
    await gathered(this.pc);
    this.signalling.send({ type: "sdp.offer", sdp: this.pc.localDescription.sdp });
  }

  /** @param {{type: string, sdp: string}} message */
  async handle(message) {
    if (message.type === "sdp.answer") {
      await this.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
    } else {
      await this.pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
      await this.pc.setLocalDescription();
      await gathered(this.pc);
      this.signalling.send({ type: "sdp.answer", sdp: this.pc.localDescription.sdp });
    }
  }

  /** Stop every track and close the connection. */
  close() {
    for (const sender of this.pc.getSenders()) if (sender.track) sender.track.stop();
    this.pc.close();
  }
}
