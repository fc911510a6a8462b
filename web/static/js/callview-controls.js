// The call's controls: which buttons show for this person, on whose camera (one's own
// on a phone, the one looked at on the expert's screen); steering that camera (switch,
// torch, zoom); the microphone; snapshots; leaving, and ending the call for everyone
// (asked again); and the call's clock.
import { setStatus } from "./api.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { cameraState } from "./media.js";

const ZOOM_STEP = 1.5;

/** @typedef {import("./signalling.js").CameraState} CameraState */

export class Controls {
  /**
   * @param {HTMLElement} root the call section
   * @param {import("./call.js").Call} call
   * @param {object} options
   * @param {boolean} options.expert the expert's screen (else a phone's)
   * @param {boolean} options.staff signed in as staff, not by a link
   * @param {() => number | null} options.viewing whose camera the expert looks at
   * @param {(camera: number) => import("./shapes.js").Shape[]} options.shapes the
   *   drawings on a camera's picture, for its snapshot
   */
  constructor(root, call, { expert, staff, viewing, shapes }) {
    this.root = root;
    this.call = call;
    this.expert = expert;
    this.staff = staff;
    this.viewing = viewing;
    this.shapes = shapes;
    /** @type {Map<number, CameraState>} the last camera.state of each participant */
    this.cameras = new Map();
    this.snapshotSerial = 0;
    /** @type {string | null} the snapshot request awaiting its answer */
    this.pendingSnapshot = null;
    this.timer = window.setInterval(() => this.tickTimer(), 1000);
    this.wire();
  }

  /**
   * An element of this call section (see dom.js).
   * @template {Element} [T=HTMLElement]
   * @param {string} selector @param {new () => T} [kind]
   * @returns {T}
   */
  $(selector, kind) {
    return $(selector, kind, this.root);
  }

  wire() {
    const { call } = this;
    /** @param {string} action @param {() => void} handler */
    const on = (action, handler) => this.$(`[data-action="${action}"]`)
      .addEventListener("click", handler);
    on("leave", () => call.leave());
    // Ending the call for everyone is asked again, in place of its button.
    const confirmEnd = (/** @type {boolean} */ asking) => {
      this.$('[data-action="end-call"]').hidden = asking;
      this.$('[data-region="end-call-confirm"]').hidden = !asking;
      if (asking) this.$('[data-action="end-call-cancel"]', HTMLButtonElement).focus();
    };
    on("end-call", () => confirmEnd(true));
    on("end-call-cancel", () => confirmEnd(false));
    on("end-call-confirm", () => {
      confirmEnd(false);
      call.endForAll();
    });
    on("mute", () => this.toggleMute());
    on("snapshot", () => this.snapshot());
    on("camera-switch", () => this.steer("switch", null));
    on("torch", () => {
      const state = this.cameraOf(this.cameraTarget());
      this.steer("torch", !(state && state.torch));
    });
    on("zoom-in", () => this.zoom(ZOOM_STEP));
    on("zoom-out", () => this.zoom(1 / ZOOM_STEP));
  }

  /** Another participant's camera, as it said it is. @param {CameraState & {from: number}} message */
  cameraState(message) {
    this.cameras.set(message.from, message);
    this.show();
  }

  /** Forget the others' cameras (joined as a new participant: they say again). */
  forgetCameras() {
    this.cameras.clear();
  }

  /** Whose camera the camera buttons steer: one's own (field) or the viewed one's. */
  cameraTarget() {
    return this.expert ? this.viewing() : this.call.me;
  }

  /** @param {number | null} id */
  cameraOf(id) {
    if (id === null) return null;
    if (id === this.call.me) {
      const track = this.call.stream.getVideoTracks()[0];
      return track ? cameraState(track, this.call.cameras) : null;
    }
    return this.cameras.get(id) || null;
  }

  /** Show the buttons this person may use, on the camera they act on. */
  show() {
    const me = this.call.joined ? this.call.joined.you : null;
    const state = this.cameraOf(this.cameraTarget());
    const can = new Set(state ? state.can : []);
    /** @param {string} action @param {boolean} visible */
    const show = (action, visible) => { this.$(`[data-action="${action}"]`).hidden = !visible; };
    show("camera-switch", can.has("switch"));
    show("torch", can.has("torch"));
    show("zoom-in", this.expert && can.has("zoom"));
    show("zoom-out", this.expert && can.has("zoom"));
    this.$('[data-action="torch"]').setAttribute("aria-pressed", String(Boolean(state && state.torch)));
    const snapshots = Boolean(me && me.role !== "customer");
    show("snapshot", snapshots);
    const snapshot = this.$('[data-action="snapshot"]', HTMLButtonElement);
    snapshot.disabled = this.pendingSnapshot !== null
      || (this.expert ? this.viewing() === null : !this.call.stream.getVideoTracks().length);
    snapshot.textContent = this.pendingSnapshot ? t("Saving…") : t("Snapshot");
    show("end-call", this.staff && this.$('[data-region="end-call-confirm"]').hidden === true);
    this.$('[data-action="mute"]', HTMLButtonElement).disabled =
      !this.call.stream.getAudioTracks().length;
  }

  toggleMute() {
    const tracks = this.call.stream.getAudioTracks();
    if (!tracks.length) return;
    const muted = tracks[0].enabled;  // enabled now: this press mutes
    for (const track of tracks) track.enabled = !muted;
    if (this.call.media) this.call.media.mute("audio", muted);
    const button = this.$('[data-action="mute"]');
    button.setAttribute("aria-pressed", String(muted));
    button.textContent = muted ? t("Unmute") : t("Mute");
    setStatus(muted ? t("Your microphone is off.") : t("Your microphone is on."));
  }

  /**
   * Steer a camera: one's own (field), or the viewed participant's (expert).
   * @param {"switch" | "torch" | "zoom"} action
   * @param {string | boolean | number | null} value as in camera.control
   */
  async steer(action, value) {
    if (this.expert) {
      const viewing = this.viewing();
      if (viewing !== null) {
        this.call.send({ type: "camera.control", target: viewing, action, value });
      }
      return;
    }
    const media = this.call.media;
    if (!media) return;
    try {
      await media.steer(action, value);
      media.reportCamera();
    } catch (error) {
      setStatus(`The camera could not do that: ${/** @type {Error} */ (error).message}`);
    }
    this.show();
  }

  /** @param {number} factor */
  zoom(factor) {
    const state = this.cameraOf(this.viewing());
    const zoom = Math.min(100, Math.max(0.01, ((state && state.zoom) || 1) * factor));
    this.steer("zoom", Math.round(zoom * 100) / 100);
  }

  /** Ask the server for a snapshot of the big picture, with its drawings. */
  snapshot() {
    const camera = this.expert ? this.viewing() : this.call.me;
    if (camera === null || this.pendingSnapshot) return;
    this.snapshotSerial += 1;
    this.pendingSnapshot = `snap-${this.snapshotSerial}`;
    const shapes = this.shapes(camera);
    this.call.send({ type: "snapshot.request", camera, request: this.pendingSnapshot, shapes });
    setStatus(t("Taking a snapshot…"));
    this.show();
  }

  /**
   * A snapshot was saved to the job record.
   * @param {import("./signalling.js").SnapshotSaved} message
   * @returns {boolean} whether it is the one this screen asked for
   */
  saved(message) {
    if (!message.request || message.request !== this.pendingSnapshot) return false;
    this.pendingSnapshot = null;
    return true;
  }

  /** The server took no snapshot: the button is free again. */
  refused() {
    this.pendingSnapshot = null;
    this.show();
  }

  /** The call's length so far, once a second, from when it began (the server's). */
  tickTimer() {
    const joined = this.call.joined;
    const timer = this.$('[data-region="call-timer"]');
    if (!joined || !joined.call.started_at) {
      timer.hidden = true;
      return;
    }
    const s = Math.max(0, Math.floor(Date.now() / 1000 - joined.call.started_at));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    const clock = `${m}:${String(s % 60).padStart(2, "0")}`;
    timer.textContent = h ? `${h}:${clock.padStart(5, "0")}` : clock;
    timer.hidden = false;
  }

  /** The clock stops (the call ended). */
  stop() {
    clearInterval(this.timer);
  }
}
