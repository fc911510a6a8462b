// The participant's one RTCPeerConnection with the server (docs/protocol.md, Media).
//
// The client offers its camera and microphone; the server answers, then sends its own
// offers whenever the tracks it forwards change. Signalling messages are handled one
// at a time, in order. Candidates are gathered before a description is sent (the
// server's aiortc does not trickle either), so no ice.candidate messages are needed.

// TypeScript's DOM types lack the camera controls of Media Capture Image
// (https://w3c.github.io/mediacapture-image/), which phones' browsers implement.
/**
 * @typedef {MediaTrackCapabilities & {torch?: boolean, zoom?: {min: number, max: number}}}
 *   CameraCapabilities
 * @typedef {MediaTrackSettings & {torch?: boolean, zoom?: number}} CameraSettings
 * @typedef {MediaTrackConstraintSet & {torch?: boolean, zoom?: number}} CameraConstraints
 */

/**
 * Wait until the connection has gathered its candidates (bounded).
 * @param {RTCPeerConnection} pc
 * @param {number} timeoutMs
 * @returns {Promise<void>}
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
 * How many cameras this device has (counted once the camera is open: before the
 * permission, browsers hide them), so that "switch" is offered only where there is
 * another one.
 * @returns {Promise<number>}
 */
export async function countCameras() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices.filter((d) => d.kind === "videoinput").length;
  } catch {
    return 1;
  }
}

/**
 * The local description just set, with the candidates gathered since.
 * @param {RTCPeerConnection} pc
 */
function localSdp(pc) {
  if (!pc.localDescription) throw new Error("no local description to send");
  return pc.localDescription.sdp;
}

/**
 * Open another camera: the one facing `facing`, or with `null` the other side, or on
 * a device whose cameras say no side, the next one.
 * @param {MediaStreamTrack} track the camera in use
 * @param {"user" | "environment" | null} facing
 * @returns {Promise<MediaStreamTrack | null>}
 */
async function otherCamera(track, facing) {
  const settings = track.getSettings();
  let video;
  if (settings.facingMode || facing) {
    const side = facing || (settings.facingMode === "environment" ? "user" : "environment");
    video = { facingMode: { exact: side } };
  } else {
    const cameras = (await navigator.mediaDevices.enumerateDevices())
      .filter((d) => d.kind === "videoinput");
    if (cameras.length < 2) return null;
    const index = cameras.findIndex((d) => d.deviceId === settings.deviceId);
    video = { deviceId: { exact: cameras[(index + 1) % cameras.length].deviceId } };
  }
  try {
    return (await navigator.mediaDevices.getUserMedia({ video })).getVideoTracks()[0];
  } catch (error) {
    // Many phones open one camera at a time: let go of this one and try again.
    if (/** @type {Error} */ (error).name !== "NotReadableError") throw error;
    track.stop();
    return (await navigator.mediaDevices.getUserMedia({ video })).getVideoTracks()[0];
  }
}

/**
 * Zoom, torch and facing of a camera track, as camera.state reports them.
 * @param {MediaStreamTrack} track
 * @param {number} cameras how many the device has (`countCameras`)
 * @returns {import("./signalling.js").CameraState}
 */
export function cameraState(track, cameras) {
  /** @type {CameraSettings} */
  const settings = track.getSettings ? track.getSettings() : {};
  /** @type {CameraCapabilities} */
  const can = track.getCapabilities ? track.getCapabilities() : {};
  const actions = [];
  if (cameras > 1) actions.push("switch");
  if (can.torch) actions.push("torch");
  if (can.zoom) actions.push("zoom");
  return {
    type: "camera.state",
    facing: settings.facingMode === "user" || settings.facingMode === "environment"
      ? settings.facingMode : null,
    torch: can.torch ? Boolean(settings.torch) : null,
    zoom: can.zoom && typeof settings.zoom === "number" ? settings.zoom : null,
    can: actions,
  };
}

/**
 * Media with the server. Events: "track" (detail: {track, streams, participantId, kind}),
 * "state" (detail: the connection state), "tracks" (detail: a media.tracks message),
 * "camera" (detail: a camera.state message, another participant's camera),
 * "localtrack" (detail: the new local video track after a camera switch), "refused"
 * (detail: the server's error: it did not take this connection's offer).
 */
export class MediaLink extends EventTarget {
  /**
   * @param {import("./signalling.js").Signalling} signalling
   * @param {{ice_servers: RTCIceServer[], ice_transport_policy: RTCIceTransportPolicy}} ice
   * @param {number} cameras how many the device has (`countCameras`)
   */
  constructor(signalling, ice, cameras) {
    super();
    this.signalling = signalling;
    this.cameras = cameras;
    this.pc = new RTCPeerConnection({
      iceServers: ice.ice_servers,
      iceTransportPolicy: ice.ice_transport_policy,
    });
    this.queue = Promise.resolve();
    /** While true, the server's offers are the old media session's: ignored. */
    this.restarting = false;
    /** This connection's offer awaits the server's answer. */
    this.offering = false;
    /** Answers still due, on this socket, to offers sent before this connection's. */
    this.ahead = 0;
    /** @type {AbortController} removes this link's listeners from its signalling */
    this.listening = new AbortController();
    this.pc.addEventListener("track", (event) => {
      // The stream id of a forwarded track names its participant: p<participant>
      // (docs/protocol.md, Media). The server reuses m-sections, so the same track
      // comes again for another participant, with another stream; its own id stays
      // the first one's.
      const stream = event.streams[0];
      const match = stream ? /^p(\d+)$/.exec(stream.id) : null;
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
    this.listen(signalling);
  }

  /**
   * Talk to the server over this signalling connection from now on: after a resumed
   * socket, the media session goes on and its messages come on the new one.
   * @param {import("./signalling.js").Signalling} signalling
   */
  rebind(signalling) {
    this.listening.abort();
    this.listening = new AbortController();
    this.signalling = signalling;
    this.listen(signalling);
  }

  /** @param {import("./signalling.js").Signalling} signalling */
  listen(signalling) {
    const { signal } = this.listening;
    signalling.addEventListener("media.tracks", (event) => {
      this.dispatchEvent(new CustomEvent("tracks", { detail: /** @type {CustomEvent} */ (event).detail }));
    }, { signal });
    signalling.addEventListener("camera.state", (event) => {
      this.dispatchEvent(new CustomEvent("camera", { detail: /** @type {CustomEvent} */ (event).detail }));
    }, { signal });
    signalling.addEventListener("camera.control", (event) => {
      /** @type {import("./signalling.js").CameraControl} */
      const message = /** @type {CustomEvent} */ (event).detail;
      this.queue = this.queue.then(() => this.steer(message.action, message.value))
        .catch((error) => console.warn("camera control failed", error))
        .then(() => this.reportCamera());
    }, { signal });
    for (const type of ["sdp.answer", "sdp.offer", "error"]) {
      signalling.addEventListener(type, (event) => {
        const message = /** @type {CustomEvent} */ (event).detail;
        if (message.type !== "sdp.offer") {
          if (message.type === "error" && message.ref !== "sdp.offer") return;
          // The server answers offers in order: those sent before this connection's
          // (by the connection it replaces) are answered first, and not to it.
          if (this.ahead > 0) {
            this.ahead -= 1;
            return;
          }
          if (!this.offering) return;
          this.offering = false;
          // The answer ends a restart as it arrives: the new session's first offer
          // may come right behind it, before the answer is applied.
          this.restarting = false;
          if (message.type === "error") {
            this.dispatchEvent(new CustomEvent("refused", { detail: message }));
            return;
          }
        } else if (this.restarting) {
          // Until the answer to a restart, the server's offers are its old session's
          // (docs/protocol.md, Coming back): the new one sends its own after.
          return;
        }
        this.queue = this.queue.then(() => this.handle(message)).catch((error) => {
          console.error("media negotiation failed", error);
        });
      }, { signal });
    }
  }

  /**
   * Bytes received on this connection so far (media, RTCP), or null before it has a
   * transport: what tells a connection that carries nothing any more.
   * @returns {Promise<number | null>}
   */
  async bytesReceived() {
    /** @type {number | null} */
    let bytes = null;
    (await this.pc.getStats()).forEach((report) => {
      if (report.type === "transport") bytes = (bytes || 0) + (report.bytesReceived || 0);
    });
    return bytes;
  }

  /**
   * Publish a local stream and start the connection.
   * @param {MediaStream} stream
   * @param {{restart?: boolean}} [options] `restart`: this connection takes the place of
   *   the participant's media session on the server (docs/protocol.md, sdp.offer)
   */
  async publish(stream, { restart = false } = {}) {
    this.restarting = restart;
    for (const track of stream.getTracks()) {
      this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
    // Publishing nothing (no camera, or it was refused): still receive the others.
    if (!stream.getTracks().length) this.pc.addTransceiver("video", { direction: "recvonly" });
    await this.pc.setLocalDescription();
    await gathered(this.pc);
    this.ahead = this.signalling.offersAwaiting;
    this.offering = true;
    this.signalling.send(restart ? { type: "sdp.offer", restart, sdp: localSdp(this.pc) }
      : { type: "sdp.offer", sdp: localSdp(this.pc) });
    this.reportCamera();
  }

  /** The sender of the local camera, if any. */
  cameraSender() {
    return this.pc.getSenders().find((s) => s.track && s.track.kind === "video") || null;
  }

  /** Tell the others what this camera is and can do (camera.state). */
  reportCamera() {
    const sender = this.cameraSender();
    if (sender && sender.track) this.signalling.send(cameraState(sender.track, this.cameras));
  }

  /**
   * Mute or unmute the local microphone or camera: stop sending, and say so.
   * @param {"audio" | "video"} kind
   * @param {boolean} muted
   */
  mute(kind, muted) {
    for (const sender of this.pc.getSenders()) {
      if (sender.track && sender.track.kind === kind) sender.track.enabled = !muted;
    }
    this.signalling.send({ type: "media.mute", kind, muted });
  }

  /**
   * Apply a camera.control from staff, as far as this camera can.
   * @param {"switch" | "torch" | "zoom"} action
   * @param {string | boolean | number | null} value
   */
  async steer(action, value) {
    const sender = this.cameraSender();
    if (!sender || !sender.track) return;
    const track = sender.track;
    /** @type {CameraCapabilities} */
    const can = track.getCapabilities ? track.getCapabilities() : {};
    if (action === "torch" && can.torch) {
      /** @type {CameraConstraints} */
      const torch = { torch: Boolean(value) };
      await track.applyConstraints({ advanced: [torch] });
    } else if (action === "zoom" && can.zoom && typeof value === "number") {
      /** @type {CameraConstraints} */
      const zoom = { zoom: Math.min(can.zoom.max, Math.max(can.zoom.min, value)) };
      await track.applyConstraints({ advanced: [zoom] });
    } else if (action === "switch") {
      // The server lets only these through (docs/protocol.md, camera.control).
      const facing = value === "user" || value === "environment" ? value : null;
      const replacement = await otherCamera(track, facing);
      if (!replacement) return;
      replacement.enabled = track.enabled;
      await sender.replaceTrack(replacement);
      track.stop();
      this.dispatchEvent(new CustomEvent("localtrack", { detail: replacement }));
    }
  }

  /** @param {{type: string, sdp: string}} message */
  async handle(message) {
    if (message.type === "sdp.answer") {
      await this.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
    } else {
      await this.pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
      await this.pc.setLocalDescription();
      await gathered(this.pc);
      this.signalling.send({ type: "sdp.answer", sdp: localSdp(this.pc) });
    }
  }

  /**
   * Close the connection; stop the local tracks too unless they are to be published
   * again on a new connection.
   * @param {{keepTracks?: boolean}} [options]
   */
  close({ keepTracks = false } = {}) {
    this.listening.abort();
    if (!keepTracks) for (const sender of this.pc.getSenders()) if (sender.track) sender.track.stop();
    this.pc.close();
  }
}
