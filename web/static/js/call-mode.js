// This client's own media mode (adapt.js): on a thin or lossy link the picture
// degrades step by step, reduced video, then, on a phone, stills of the camera over
// the socket (stills.js) with the audio. Each change is told to the others
// (media.mode), and again after every join: the server forgets a participant's mode
// when it leaves.
import { Adaptation } from "./adapt.js";
import { StillSender } from "./stills.js";

/** @typedef {{type: "media.mode", mode: string, reason: string, kbps: number | null,
 *   loss: number | null}} ModeMessage */

export class OwnMode {
  /**
   * @param {object} call
   * @param {() => RTCPeerConnection | null} call.pc the media connection now
   * @param {() => MediaStreamTrack | null} call.camera the camera's track now
   * @param {() => boolean} call.ready whether the socket is in the call
   * @param {(message: object) => void} call.send a message on the socket
   * @param {(frame: Uint8Array<ArrayBuffer>) => boolean} call.sendBinary a binary frame on the
   *   socket, if it is in the call: whether it went
   * @param {(type: string, detail: unknown) => void} call.emit an event of the Call
   */
  constructor({ pc, camera, ready, send, sendBinary, emit }) {
    this.pc = pc;
    this.ready = ready;
    this.send = send;
    this.emit = emit;
    /** @type {Adaptation | null} this publisher's media mode, once joined */
    this.adaptation = null;
    /** @type {ModeMessage | null} the last media.mode sent */
    this.message = null;
    this.stills = new StillSender({ camera, send: sendBinary });
  }

  /**
   * In the call: keep the media mode from now on (once), and tell it again.
   * @param {string} role this client's
   */
  joined(role) {
    if (this.message) this.send(this.message);
    if (this.adaptation) return;
    const adaptation = new Adaptation({
      pc: this.pc,
      // Only a phone goes to stills: a customer or a technician by link.
      stills: role === "customer" || role === "technician",
      stillKbps: () => this.stills.kbps,
    });
    this.adaptation = adaptation;
    adaptation.addEventListener("mode", (event) => {
      const { mode, reason, kbps, loss } = /** @type {CustomEvent} */ (event).detail;
      this.message = { type: "media.mode", mode, reason, kbps, loss };
      if (this.ready()) this.send(this.message);
      if (mode === "stills") this.stills.start(); else this.stills.stop();
      this.emit("mode", this.message);
    });
  }

  stop() {
    if (this.adaptation) this.adaptation.stop();
    this.stills.stop();
  }
}
