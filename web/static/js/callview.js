// The live call on screen (web/templates/_call.html), for both faces:
//
// - "field" (a customer or technician on a phone): the phone's own camera is the big
//   picture, with the drawings aimed at it; the expert's camera is the small one.
// - "expert" (the console): the camera of the participant being helped is the big
//   picture, with the drawing tools, freeze-frame, snapshots and the remote camera
//   controls; one's own camera is the small one.
//
// A freeze is the call's, not one screen's (docs/protocol.md, Freeze): the expert asks,
// and everyone, the person holding the camera included, is shown the one frame the
// server took, with the drawings over it, until it is resumed.
//
// Everything shown comes from the Call (call.js); nothing is stored on the device.
import { setStatus } from "./api.js";
import { attachChat } from "./chat.js";
import { $ } from "./dom.js";
import { personLabel, shownName } from "./format.js";
import { t } from "./i18n.js";
import { cameraState } from "./media.js";
import { Overlay } from "./overlay.js";
import { watchQuality } from "./quality.js";
import { AnnotationTools } from "./tools.js";

const ZOOM_STEP = 1.5;
/** Where the small picture may sit, in turn ("Move small picture"). */
const CORNERS = ["bottom-right", "bottom-left", "top-left", "top-right"];
/** How long the expert reads "… left the call." where their picture was. */
const LEFT_NOTE_MS = 5000;
// Notices over the phone's picture (CallView.notice): how long each stays, how many.
const NOTICE_MS = 6000;
const NOTICES_AT_ONCE = 3;
/**
 * Who the expert looks at first: the customer, then a technician, then anyone.
 * @type {Record<string, number>}
 */
const VIEW_ORDER = { customer: 0, technician: 1 };

/** @typedef {import("./shapes.js").Shape} Shape */
/** @typedef {import("./signalling.js").CameraState} CameraState */
/** @typedef {import("./tools.js").Tool} Tool */
/** @typedef {import("./quality.js").Picture} Picture */
/**
 * A participant as joined lists them: one whose connection is lost and who may come
 * back (docs/protocol.md, participant.away) carries when, and until when.
 * @typedef {import("./signalling.js").Participant & {away_since?: number,
 *   away_until?: number}} ListedParticipant
 */

export class CallView extends EventTarget {
  /**
   * @param {HTMLElement} root the call section
   * @param {import("./call.js").Call} call
   * @param {{layout: "field" | "expert", staff?: boolean, awaited?: string | null}} options
   *   `awaited`: who the person on the phone is waiting for, as said to them ("Anna
   *   from Acme Heating"), while nobody else is in the call
   */
  constructor(root, call, { layout, staff = false, awaited = null }) {
    super();
    this.root = root;
    this.call = call;
    this.layout = layout;
    this.staff = staff;
    this.awaited = awaited;
    this.remote = this.$('[data-region="remote-video"]', HTMLVideoElement);
    this.local = this.$('[data-region="local-video"]', HTMLVideoElement);
    this.canvas = this.$('[data-region="annotations"]', HTMLCanvasElement);
    this.note = this.$("#screen-note");
    /** @type {number | null} whose picture is big (expert) */
    this.viewing = null;
    /** @type {Map<number, Map<string, Shape>>} shapes by the participant they are drawn on */
    this.drawings = new Map();
    /** @type {Map<number, CameraState>} the last camera.state of each participant */
    this.cameras = new Map();
    /** @type {Map<number, {audio: boolean, video: boolean}>} what each one muted */
    this.muted = new Map();
    /** @type {Map<number, HTMLAudioElement>} */
    this.sounds = new Map();
    this.snapshotSerial = 0;
    /** @type {string | null} the snapshot request awaiting its answer */
    this.pendingSnapshot = null;
    /** @type {{camera: number, by: number, url: string} | null} the call's frozen
     * picture, from an object URL */
    this.frozenPicture = null;
    /** Asked to freeze, the server's frame not here yet (expert). */
    this.freezing = false;
    /** @type {number | null} whose picture `remote` shows */
    this.remoteId = null;
    /** @type {Picture} the remote picture's state, as the quality watcher last saw it */
    this.picture = "none";
    /** @type {Map<number, {name: string, since: number}>} who is away since when
     * (performance.now()): their connection was lost and they may come back */
    this.away = new Map();
    this.awayTimer = 0;
    /** @type {{name: string, until: number} | null} who left lately */
    this.left = null;
    /** @type {Map<number, string> | null} who was in the call, by the last change seen */
    this.present = null;
    /** @type {Map<number, import("./signalling.js").MediaMode>} each publisher's mode */
    this.modes = new Map();
    /** @type {Map<number, {url: string, seq: number}>} each one's newest still, in memory */
    this.stills = new Map();
    this.still = this.$('[data-region="still"]', HTMLImageElement);
    this.frozenImage = this.$('[data-region="frozen"]', HTMLImageElement);
    this.modeBadge = this.$('[data-region="media-mode"]');

    /** The phone's chat and the rest shown (layout "field"; else the picture fills
     * the screen), and the chat lines come since it was last shown. */
    this.panelOpen = false;
    this.unread = 0;
    this.notices = this.$('[data-region="notices"]');

    root.classList.add(`layout-${layout}`);
    const screen = /** @type {HTMLElement} */ (this.canvas.parentElement);
    const big = layout === "field" ? this.local : this.remote;
    const small = layout === "field" ? this.remote : this.local;
    screen.prepend(big);
    big.classList.remove("pip");
    small.classList.add("pip");
    screen.after(small);
    this.big = big;
    this.small = small;
    this.overlay = new Overlay(this.canvas, big);
    this.tools = layout === "expert"
      ? new AnnotationTools(this.overlay, (m) => call.sendDrawing(m), () => this.viewing)
      : null;
    /** Whether this person turned their camera off, the small picture hidden, and
     * which corner it is in (CORNERS). */
    this.cameraOff = false;
    this.smallHidden = false;
    this.corner = 0;
    this.timer = window.setInterval(() => this.tickTimer(), 1000);
    this.showLocal();
    this.showRemote();
    this.showSmall();
    this.wire();
    this.showPanelButton();
    this.stopQuality = watchQuality(this.$('[data-region="quality"]'), {
      pc: () => (call.media ? call.media.pc : null),
      video: this.remote,
      expected: () => this.expected(),
      reconnecting: () => call.state === "reconnecting",
      staff: layout === "expert",  // customers and technicians get no round-trip jargon
      onPicture: (picture) => this.pictureIs(picture),
    });
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

  /** The participant whose picture carries the drawings shown. */
  target() {
    return this.layout === "field" ? this.call.me : this.viewing;
  }

  /** Whether the big picture is frozen, or being frozen by this expert. */
  get frozen() {
    return this.freezing
      || (this.frozenPicture !== null && this.frozenPicture.camera === this.target());
  }

  /** @param {number | null} id */
  drawingsOf(id) {
    if (id === null) return new Map();
    let shapes = this.drawings.get(id);
    if (!shapes) {
      shapes = new Map();
      this.drawings.set(id, shapes);
    }
    return shapes;
  }

  wire() {
    const { call } = this;
    call.addEventListener("state", (event) => {
      const { state, text } = /** @type {CustomEvent} */ (event).detail;
      this.root.dataset.state = state;
      setStatus(text);
      // Reconnecting is one notice, updated in place, gone once connected again.
      if (state === "reconnecting") this.notice(text, "reconnecting");
      else this.notices.querySelector('[data-notice="reconnecting"]')?.remove();
      if (state === "ended") this.ended();
      else if (this.layout === "field") this.notes();  // nobody awaited while reconnecting
    });
    call.addEventListener("joined", (event) => {
      /** @type {import("./signalling.js").Joined} */
      const message = /** @type {CustomEvent} */ (event).detail;
      // The shapes are the call's as the server has them now, drawn while this page
      // was away included (docs/protocol.md, Coming back).
      this.drawings.clear();
      for (const { target, shape } of message.annotations || []) {
        this.drawingsOf(target).set(shape.id, shape);
      }
      if (!message.resumed) {  // the same participant keeps what it knew of the others
        this.cameras.clear();
        this.muted.clear();
        for (const id of [...this.stills.keys()]) this.forgetStills(id);
        this.modes.clear();  // the server tells them again, right after joined
      }
      this.away.clear();
      this.present = null;  // everyone listed is new to this connection, none left
      // A freeze still on comes again right after joined; one ended meanwhile, or one
      // being taken when the connection was lost, is over.
      this.freezing = false;
      this.dropFrozen();
      this.showFrozen();
      for (const p of /** @type {ListedParticipant[]} */ (message.participants)) {
        if (typeof p.away_since !== "number") continue;
        // Away for how long by the server's clock, within its window: a client's clock
        // off by minutes cannot make the count run backwards or past the window.
        const window = typeof p.away_until === "number" ? p.away_until - p.away_since : 0;
        const already = Math.min(Math.max(0, Date.now() / 1000 - p.away_since), window);
        this.away.set(p.id, { name: p.name, since: performance.now() - already * 1000 });
      }
      this.awayClock();
      this.overlay.shapes = this.drawingsOf(this.target());
      this.overlay.redraw();
      this.controls();
    });
    call.addEventListener("participants", () => this.participantsChanged());
    call.addEventListener("participant.away", (event) => {
      /** @type {{participant: import("./signalling.js").Participant}} */
      const { participant } = /** @type {CustomEvent} */ (event).detail;
      // The server sends this as soon as it sees the connection lost: from now.
      this.away.set(participant.id, { name: participant.name, since: performance.now() });
      this.awayClock();
      this.people();
      this.notes();
    });
    call.addEventListener("participant.back", (event) => {
      /** @type {{participant: import("./signalling.js").Participant}} */
      const { participant } = /** @type {CustomEvent} */ (event).detail;
      this.away.delete(participant.id);
      this.awayClock();
      this.people();
      this.notes();
    });
    call.addEventListener("stream", (event) => {
      /** @type {{participantId: number, stream: MediaStream | null}} */
      const { participantId, stream } = /** @type {CustomEvent} */ (event).detail;
      this.sound(participantId, stream);
      this.pickView();
      this.showRemote();
      this.people();
    });
    call.addEventListener("localtrack", () => this.showLocal());
    call.addEventListener("media.mode", (event) => {
      /** @type {import("./signalling.js").MediaMode} */
      const message = /** @type {CustomEvent} */ (event).detail;
      this.modes.set(message.participant, message);
      this.showMode();
    });
    call.addEventListener("still", (event) => {
      /** @type {import("./signalling.js").Still} */
      const still = /** @type {CustomEvent} */ (event).detail;
      const old = this.stills.get(still.from);
      if (old) URL.revokeObjectURL(old.url);
      this.stills.set(still.from, { url: URL.createObjectURL(still.jpeg), seq: still.seq });
      this.showMode();
    });
    call.addEventListener("mode", () => this.showMode());
    call.addEventListener("frozen", (event) => {
      /** @type {import("./signalling.js").Frozen} */
      const frozen = /** @type {CustomEvent} */ (event).detail;
      this.dropFrozen();
      this.frozenPicture = { camera: frozen.camera, by: frozen.by,
        url: URL.createObjectURL(frozen.jpeg) };
      this.freezing = false;
      this.showFrozen();
      if (this.layout === "field" && frozen.camera === this.call.me) {
        this.say(t("{name} froze your picture to draw on it.", { name: this.nameOf(frozen.by) }));
      }
    });
    call.addEventListener("freeze.ended", () => {
      const mine = this.frozenPicture && this.frozenPicture.camera === this.call.me;
      this.dropFrozen();
      this.showFrozen();
      if (this.layout === "field" && mine) this.say(t("Your picture is live again."));
    });
    call.addEventListener("media.tracks", (event) => {
      /** @type {import("./signalling.js").MediaTracks} */
      const message = /** @type {CustomEvent} */ (event).detail;
      const state = { audio: false, video: false };
      for (const track of message.tracks) if (track.muted) state[track.kind] = true;
      this.muted.set(message.participant, state);
      this.people();
      this.showRemote();
    });
    call.addEventListener("camera.state", (event) => {
      /** @type {CameraState & {from: number}} */
      const message = /** @type {CustomEvent} */ (event).detail;
      this.cameras.set(message.from, message);
      this.controls();
    });
    for (const type of ["annotation.add", "annotation.remove", "annotation.clear",
      "annotation.pointer"]) {
      call.addEventListener(type, (event) => this.annotate(/** @type {CustomEvent} */ (event).detail));
    }
    call.addEventListener("snapshot.saved", (event) => {
      /** @type {import("./signalling.js").SnapshotSaved} */
      const message = /** @type {CustomEvent} */ (event).detail;
      if (message.request && message.request === this.pendingSnapshot) {
        this.pendingSnapshot = null;
        this.say(t("Snapshot saved to the job record."));
        this.controls();
      } else {
        this.say(t("A snapshot was saved to the job record."));
      }
      this.dispatchEvent(new CustomEvent("snapshot", { detail: message }));
    });
    call.addEventListener("error", (event) => {
      /** @type {import("./signalling.js").ErrorMessage} */
      const message = /** @type {CustomEvent} */ (event).detail;
      if (message.ref === "snapshot.request") {
        this.pendingSnapshot = null;
        this.controls();
      }
      if (message.ref === "freeze" && this.freezing) {
        this.freezing = false;
        this.showFrozen();
      }
      if (message.code !== "rate_limited") setStatus(message.message);
    });
    attachChat(call, this.$('[data-region="chat"]'), this.$("#chat-form", HTMLFormElement));
    call.addEventListener("chat.message", (event) => {
      /** @type {import("./signalling.js").ChatMessage} */
      const { message, replayed } = /** @type {CustomEvent} */ (event).detail;
      if (replayed || message.participant_id === this.call.me || !this.fullScreen()) return;
      this.unread += 1;
      this.showPanelButton();
      this.notice(`${shownName(message.from)}: ${message.text}`);
    });

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
    on("camera", () => this.toggleCamera());
    on("self-view", () => {
      this.smallHidden = !this.smallHidden;
      this.showSmall();
    });
    on("self-view-move", () => {
      this.corner = (this.corner + 1) % CORNERS.length;
      this.showSmall();
    });
    on("snapshot", () => this.snapshot());
    on("panel", () => {
      this.panelOpen = !this.panelOpen;
      if (this.panelOpen) this.unread = 0;
      this.showPanelButton();
    });
    on("camera-switch", () => this.steer("switch", null));
    on("torch", () => {
      const state = this.cameraOf(this.cameraTarget());
      this.steer("torch", !(state && state.torch));
    });
    on("zoom-in", () => this.zoom(ZOOM_STEP));
    on("zoom-out", () => this.zoom(1 / ZOOM_STEP));
    if (this.tools) this.wireTools(on);
  }

  /** @param {(action: string, handler: () => void) => void} on */
  wireTools(on) {
    const tools = /** @type {AnnotationTools} */ (this.tools);
    this.$("#draw-tools").hidden = false;
    this.canvas.classList.add("drawing");
    for (const tool of /** @type {Tool[]} */ (["pointer", "pen", "arrow", "circle", "text"])) {
      on(`tool-${tool}`, () => {
        tools.tool = tool;
        const buttons = /** @type {NodeListOf<HTMLElement>} */ (
          this.root.querySelectorAll('[data-action^="tool-"]'));
        for (const b of buttons) {
          b.setAttribute("aria-pressed", String(b.dataset.action === `tool-${tool}`));
        }
        this.canvas.dataset.tool = tool;
      });
    }
    this.canvas.dataset.tool = tools.tool;
    const swatches = [.../** @type {NodeListOf<HTMLElement>} */ (
      this.root.querySelectorAll('[data-action="color"]'))];
    for (const swatch of swatches) {
      swatch.addEventListener("click", () => {
        tools.color = String(swatch.dataset.color);  // _call.html gives each swatch one
        for (const b of swatches) b.setAttribute("aria-pressed", String(b === swatch));
      });
    }
    on("undo", () => tools.undo());
    on("clear", () => tools.clear());
    on("freeze", () => this.freeze(!this.frozen));
  }

  /** @param {import("./signalling.js").Annotation} message from someone else */
  annotate(message) {
    const shapes = this.drawingsOf(message.target);
    if (message.type === "annotation.add") {
      shapes.delete(message.shape.id);
      shapes.set(message.shape.id, message.shape);
    } else if (message.type === "annotation.remove") {
      shapes.delete(message.id);
    } else if (message.type === "annotation.clear") {
      shapes.clear();
    }
    if (message.target !== this.target()) return;
    if (message.type === "annotation.pointer") {
      this.overlay.point(String(message.from), message.x, message.y, message.color);
    } else {
      this.overlay.redraw();
    }
  }

  /** Someone joined or left (or this client joined again). */
  participantsChanged() {
    const now = new Map([...this.call.participants.values()].map((p) => [p.id, p.name]));
    for (const [id, name] of this.present || []) {
      if (now.has(id)) continue;
      this.away.delete(id);
      this.forgetStills(id);
      this.left = { name, until: performance.now() + LEFT_NOTE_MS };
      setTimeout(() => this.notes(), LEFT_NOTE_MS + 50);
    }
    if (this.present) {
      for (const [id, name] of now) if (!this.present.has(id)) this.notice(t("{name} joined the call.", { name }));
      // Alone now, the note over the picture says who left: no notice besides.
      for (const [id, name] of this.present) {
        if (!now.has(id) && now.size) this.notice(t("{name} left the call.", { name }));
      }
    }
    this.present = now;
    this.awayClock();
    this.pickView();
    this.people();
    this.notes();
  }

  /** Keep the away clocks running, once a second, while anyone is away. */
  awayClock() {
    if (this.away.size && !this.awayTimer) {
      this.awayTimer = window.setInterval(() => this.tickAway(), 1000);
    } else if (!this.away.size && this.awayTimer) {
      clearInterval(this.awayTimer);
      this.awayTimer = 0;
    }
  }

  tickAway() {
    for (const span of /** @type {NodeListOf<HTMLElement>} */ (
      this.root.querySelectorAll('[data-region="away"]'))) {
      span.textContent = this.awayWords(Number(span.dataset.participant), false);
    }
    this.notes();
  }

  /**
   * "Customer disconnected, reconnecting 0:12", from when they went away.
   * @param {number} id @param {boolean} named with their name first
   */
  awayWords(id, named) {
    const away = this.away.get(id);
    if (!away) return "";
    const s = Math.max(0, Math.floor((performance.now() - away.since) / 1000));
    const clock = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    return named ? t("{name} disconnected, reconnecting {clock}", { name: away.name, clock })
      : t("disconnected, reconnecting {clock}", { clock });
  }

  /** What the remote picture should show: video, stills, a camera off on purpose, or
   * nothing. @returns {"video" | "stills" | "off" | "none"} */
  expected() {
    const id = this.remoteId;
    if (id === null || !this.remote.srcObject) return "none";
    if (this.muted.get(id)?.video) return "off";
    return this.modes.get(id)?.mode === "stills" ? "stills" : "video";
  }

  /** @param {number} id */
  forgetStills(id) {
    const old = this.stills.get(id);
    if (old) URL.revokeObjectURL(old.url);
    this.stills.delete(id);
    this.modes.delete(id);
  }

  /**
   * Show the media mode: on the expert's screen, the viewed participant's, with its
   * newest still in place of the frozen video; on a phone, its own.
   */
  showMode() {
    const expert = this.layout === "expert";
    const message = expert ? (this.viewing === null ? null : this.modes.get(this.viewing))
      : this.call.modeMessage;
    const mode = message ? message.mode : "video";
    const why = message ? modeWhy(message.reason, message.kbps, message.loss) : "";
    const words = expert
      ? { video: "", reduced: t("Reduced video: {why}", { why }),
        stills: t("Still pictures: {why}", { why }) }[mode]
      : { video: "", reduced: t("Weak connection: video reduced"),
        stills: t("Weak connection: sending still pictures") }[mode];
    this.modeBadge.textContent = words || "";
    this.modeBadge.title = why;
    this.modeBadge.hidden = !words;
    this.modeBadge.dataset.mode = mode;
    const still = expert && mode === "stills" && this.viewing !== null
      ? this.stills.get(this.viewing) : null;
    if (still && this.still.dataset.seq !== String(still.seq)) {
      this.still.src = still.url;
      this.still.dataset.seq = String(still.seq);
    }
    this.still.hidden = !still;
    this.notes();
  }

  /** The quality watcher's verdict on the remote picture. @param {Picture} picture */
  pictureIs(picture) {
    if (picture === this.picture) return;
    this.picture = picture;
    this.remote.dataset.picture = picture;
    this.notes();
  }

  /** The expert looks at the participant they chose, else the likeliest one. */
  pickView() {
    if (this.layout !== "expert") return;
    const { participants, streams } = this.call;
    if (this.viewing !== null && participants.has(this.viewing)
        && streams.get(this.viewing)?.getVideoTracks().length) return;
    const senders = [...participants.values()]
      .filter((p) => streams.get(p.id)?.getVideoTracks().length)
      .sort((a, b) => (VIEW_ORDER[a.role] ?? 2) - (VIEW_ORDER[b.role] ?? 2) || a.id - b.id);
    const next = senders.length ? senders[0].id
      : participants.has(/** @type {number} */ (this.viewing)) ? this.viewing : null;
    this.view(next);
  }

  /** @param {number | null} id */
  view(id) {
    if (id === this.viewing) return;
    // Leaving a picture this expert froze resumes it for everyone; one someone else
    // froze stays frozen for the others, and this screen shows the live picture chosen.
    if (this.freezing || (this.frozenPicture && this.frozenPicture.by === this.call.me
      && this.frozenPicture.camera === this.viewing)) this.freeze(false);
    this.viewing = id;
    this.showFrozen();
    this.overlay.shapes = this.drawingsOf(id);
    this.overlay.pointers.clear();
    this.overlay.redraw();
    this.showRemote();
    this.people();
    this.controls();
    this.showMode();
  }

  showLocal() {
    const video = this.call.stream.getVideoTracks();
    for (const track of video) track.enabled = !this.cameraOff;  // a new camera too
    this.local.srcObject = video.length ? new MediaStream(video) : null;
    this.local.hidden = this.layout === "expert" && !video.length;
    if (this.layout === "field") this.notes();
    this.showCamera();
    this.controls();
  }

  showRemote() {
    const { streams } = this.call;
    let id = this.viewing;
    if (this.layout === "field") {
      // The small picture: whoever else sends video (the expert's face, usually).
      id = [...streams.keys()].find((k) => streams.get(k)?.getVideoTracks().length) ?? null;
    }
    const stream = id === null ? null : streams.get(id);
    const video = stream ? stream.getVideoTracks() : [];
    const wanted = video.length ? video[0] : null;
    const current = this.remote.srcObject
      ? /** @type {MediaStream} */ (this.remote.srcObject).getVideoTracks()[0] : null;
    if (wanted !== current) this.remote.srcObject = wanted ? new MediaStream([wanted]) : null;
    this.remoteId = wanted ? id : null;
    if (this.layout === "field") this.remote.hidden = !wanted;
    this.notes();
  }

  /** The words over the big picture: who is (not) there, and why no picture. */
  notes() {
    if (this.layout === "field") return this.fieldNote();
    const id = this.viewing;
    const who = id === null ? null : this.call.participants.get(id);
    if (this.left && performance.now() >= this.left.until) this.left = null;
    // Nobody's picture to show: someone away is why, else someone who just left.
    const awayId = id !== null && this.away.has(id) ? id
      : this.remoteId === null && this.away.size ? [...this.away.keys()][0] : null;
    const paused = id !== null && this.muted.get(id)?.video;
    this.screenNote(awayId !== null ? this.awayWords(awayId, true)
      : !who ? (this.left ? t("{name} left the call.", { name: this.left.name })
        : t("Waiting for someone to join…"))
        : paused ? t("{name} paused their camera.", { name: who.name })
          : this.remoteId === null ? t("Waiting for {name}'s camera…", { name: who.name })
            : this.picture === "frozen"
              ? t("Video frozen: no new picture from {name}.", { name: who.name })
              : this.picture === "stills" && this.still.hidden
                ? t("Waiting for a still picture from {name}…", { name: who.name }) : "");
  }

  /** Over the phone's own picture: that the camera is off; else, while nobody else is
   * in the call, who is coming. */
  fieldNote() {
    if (this.left && performance.now() >= this.left.until) this.left = null;
    if (!this.call.stream.getVideoTracks().length || this.cameraOff) {
      return this.screenNote(t("Your camera is off."));
    }
    // Nobody to wait for while the call itself is coming back (the status says so).
    if (this.call.participants.size || !this.call.ready) return this.screenNote("");
    const coming = this.awaited ? t("{name} will join in a moment.", { name: this.awaited })
      : t("Someone will join in a moment.");
    this.screenNote(this.left
      ? `${t("{name} left the call.", { name: this.left.name })} ${coming}` : coming);
  }

  /** @param {string} text */
  screenNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  /** Play each other participant's sound. @param {number} id @param {MediaStream | null} stream */
  sound(id, stream) {
    const audio = stream ? stream.getAudioTracks() : [];
    let element = this.sounds.get(id);
    if (!audio.length) {
      if (element) element.remove();
      this.sounds.delete(id);
      return;
    }
    if (!element) {
      element = document.createElement("audio");
      element.autoplay = true;
      this.sounds.set(id, element);
      this.$("#sounds").append(element);
    }
    element.srcObject = new MediaStream(audio);
  }

  people() {
    const region = this.$('[data-region="participants"]');
    const items = [...this.call.participants.values()].map((p) => {
      const item = document.createElement("li");
      item.dataset.participant = String(p.id);
      const muted = this.muted.get(p.id);
      const label = muted && muted.audio
        ? t("{person} · muted", { person: personLabel(p) }) : personLabel(p);
      const away = this.away.has(p.id)
        ? Object.assign(document.createElement("span"), { className: "away" }) : null;
      if (away) {
        away.dataset.region = "away";
        away.dataset.participant = String(p.id);
        away.textContent = this.awayWords(p.id, false);
      }
      const sends = this.call.streams.get(p.id)?.getVideoTracks().length;
      if (this.layout === "expert" && sends) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = label;
        button.setAttribute("aria-pressed", String(p.id === this.viewing));
        button.setAttribute("aria-label", t("{person}: show their camera", { person: label }));
        button.addEventListener("click", () => this.view(p.id));
        item.append(button);
      } else {
        item.textContent = label;
      }
      if (away) item.append(" · ", away);
      if (this.staff && (p.role === "customer" || p.role === "technician")) {
        // Staff remove someone who came by a join link: the link stops working for good.
        // (A technician signed in as staff is refused by the server, which says why.)
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "danger";
        remove.dataset.action = "remove-participant";
        remove.textContent = t("Remove");
        remove.setAttribute("aria-label", t("Remove {name} from the call", { name: p.name }));
        remove.addEventListener("click", () => {
          if (confirm(t("Remove {name} from the call? Their link will stop working.",
            { name: p.name }))) {
            this.call.removeParticipant(p.id);
          }
        });
        item.append(" ", remove);
      }
      return item;
    });
    if (!items.length) items.push(Object.assign(document.createElement("li"),
      { className: "empty", textContent: t("Nobody else yet.") }));
    region.replaceChildren(...items);
  }

  /** Whose camera the camera buttons steer: one's own (field) or the viewed one's. */
  cameraTarget() {
    return this.layout === "field" ? this.call.me : this.viewing;
  }

  /** @param {number | null} id */
  cameraOf(id) {
    if (id === null) return null;
    if (id === this.call.me) {
      const track = this.call.stream.getVideoTracks()[0];
      return track ? cameraState(track) : null;
    }
    return this.cameras.get(id) || null;
  }

  /**
   * A notice over the picture for a few seconds (layout "field": the phone's screen is
   * the picture, and the status line is out of sight): a chat line, someone joining or
   * leaving, a snapshot kept. At most three at once, the oldest going first.
   * @param {string} text
   * @param {string} [kind] a notice that stays until replaced or removed by kind
   */
  notice(text, kind) {
    if (!this.fullScreen()) return;
    const kept = kind ? this.notices.querySelector(`p[data-notice="${kind}"]`) : null;
    const line = /** @type {HTMLElement} */ (kept || document.createElement("p"));
    line.textContent = text;
    if (kept) return;
    if (kind) line.dataset.notice = kind;
    this.notices.append(line);
    while (this.notices.childElementCount > NOTICES_AT_ONCE) this.notices.firstElementChild?.remove();
    if (!kind) setTimeout(() => line.remove(), NOTICE_MS);
  }

  /** Whether the picture is the whole screen: the phone's call on the join page, the
   * chat not shown (app.css, body.in-call). */
  fullScreen() {
    return this.layout === "field" && !this.panelOpen
      && document.body.classList.contains("in-call");
  }

  /** Say something in the status line, and over the phone's picture. @param {string} text */
  say(text) {
    setStatus(text);
    this.notice(text);
  }

  /** The phone's Chat button: what it shows, and the chat lines waiting to be read. */
  showPanelButton() {
    const button = this.$('[data-action="panel"]');
    button.hidden = this.layout !== "field";
    button.setAttribute("aria-pressed", String(this.panelOpen));
    button.textContent = this.panelOpen ? t("Back to the picture")
      : this.unread ? t("Chat ({count})", { count: this.unread }) : t("Chat");
    this.root.classList.toggle("panel-open", this.panelOpen);
  }

  /** Show the buttons this person may use, on the camera they act on. */
  controls() {
    const me = this.call.joined ? this.call.joined.you : null;
    const state = this.cameraOf(this.cameraTarget());
    const can = new Set(state ? state.can : []);
    /** @param {string} action @param {boolean} visible */
    const show = (action, visible) => { this.$(`[data-action="${action}"]`).hidden = !visible; };
    show("camera-switch", can.has("switch"));
    show("torch", can.has("torch"));
    show("zoom-in", this.layout === "expert" && can.has("zoom"));
    show("zoom-out", this.layout === "expert" && can.has("zoom"));
    this.$('[data-action="torch"]').setAttribute("aria-pressed", String(Boolean(state && state.torch)));
    const snapshots = Boolean(me && me.role !== "customer");
    show("snapshot", snapshots);
    const snapshot = this.$('[data-action="snapshot"]', HTMLButtonElement);
    snapshot.disabled = this.pendingSnapshot !== null
      || (this.layout === "expert" ? this.viewing === null : !this.call.stream.getVideoTracks().length);
    snapshot.textContent = this.pendingSnapshot ? t("Saving…") : t("Snapshot");
    show("end-call", Boolean(this.staff) && this.$('[data-region="end-call-confirm"]').hidden === true);
    this.$('[data-action="mute"]', HTMLButtonElement).disabled =
      !this.call.stream.getAudioTracks().length;
  }

  /** Turn this person's camera off (nothing is sent, the others are told) or on. */
  toggleCamera() {
    const tracks = this.call.stream.getVideoTracks();
    if (!tracks.length) return;
    this.cameraOff = !this.cameraOff;
    for (const track of tracks) track.enabled = !this.cameraOff;
    if (this.call.media) this.call.media.mute("video", this.cameraOff);
    this.showLocal();
    setStatus(this.cameraOff ? t("Your camera is off.") : t("Your camera is on."));
  }

  showCamera() {
    const button = this.$('[data-action="camera"]', HTMLButtonElement);
    button.setAttribute("aria-pressed", String(this.cameraOff));
    button.textContent = this.cameraOff ? t("Camera on") : t("Camera off");
    button.disabled = !this.call.stream.getVideoTracks().length;
  }

  /** The small picture: shown or hidden, in the corner chosen. */
  showSmall() {
    const button = this.$('[data-action="self-view"]');
    button.setAttribute("aria-pressed", String(this.smallHidden));
    button.textContent = this.smallHidden ? t("Show small picture") : t("Hide small picture");
    this.small.classList.toggle("pip-hidden", this.smallHidden);
    this.small.dataset.corner = CORNERS[this.corner];
    this.$('[data-action="self-view-move"]').hidden = this.smallHidden;
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
    if (this.layout === "expert") {
      if (this.viewing !== null) {
        this.call.send({ type: "camera.control", target: this.viewing, action, value });
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
    this.controls();
  }

  /** @param {number} factor */
  zoom(factor) {
    const state = this.cameraOf(this.viewing);
    const zoom = Math.min(100, Math.max(0.01, ((state && state.zoom) || 1) * factor));
    this.steer("zoom", Math.round(zoom * 100) / 100);
  }

  /** Ask the server for a snapshot of the big picture, with its drawings. */
  snapshot() {
    const camera = this.layout === "field" ? this.call.me : this.viewing;
    if (camera === null || this.pendingSnapshot) return;
    this.snapshotSerial += 1;
    this.pendingSnapshot = `snap-${this.snapshotSerial}`;
    const shapes = [...this.drawingsOf(camera).values()];
    this.call.send({ type: "snapshot.request", camera, request: this.pendingSnapshot, shapes });
    setStatus(t("Taking a snapshot…"));
    this.controls();
  }

  /**
   * Freeze the viewed camera's picture for everyone, to draw on a frame that holds
   * still, or resume it; the call goes on. This screen pauses at once; the frame every
   * screen shows, this one's too, comes from the server (`frozen`).
   * @param {boolean} on
   */
  freeze(on) {
    if (this.layout !== "expert" || on === this.frozen) return;
    if (on) {
      if (this.viewing === null) return;
      this.freezing = true;
      this.call.send({ type: "freeze", camera: this.viewing });
    } else {
      this.freezing = false;
      this.call.send({ type: "freeze.end" });
      this.dropFrozen();  // live here at once; the others on freeze.ended
    }
    this.showFrozen();
  }

  /** Show the frozen frame over the big picture, when it is of that camera. */
  showFrozen() {
    const picture = this.frozenPicture && this.frozenPicture.camera === this.target()
      ? this.frozenPicture : null;
    if (picture && this.frozenImage.src !== picture.url) this.frozenImage.src = picture.url;
    this.frozenImage.hidden = !picture;
    const on = this.frozen;
    this.root.classList.toggle("frozen", on);
    const screen = /** @type {HTMLElement} */ (this.canvas.parentElement);
    screen.dataset.frozen = picture && picture.by !== this.call.me
      ? t("Frozen by {name}", { name: this.nameOf(picture.by) }) : t("Frozen");
    if (this.layout !== "expert") return;
    if (on) this.remote.pause(); else this.remote.play().catch(() => {});
    const button = this.$('[data-action="freeze"]');
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? t("Resume") : t("Freeze");
  }

  dropFrozen() {
    if (this.frozenPicture) URL.revokeObjectURL(this.frozenPicture.url);
    this.frozenPicture = null;
    this.frozenImage.removeAttribute("src");
  }

  /** A participant's name, as the call lists them. @param {number} id */
  nameOf(id) {
    return this.call.participants.get(id)?.name ?? t("The expert");
  }

  ended() {
    clearInterval(this.timer);
    this.stopQuality();
    this.freezing = false;
    this.dropFrozen();
    this.showFrozen();
    for (const id of [...this.stills.keys()]) this.forgetStills(id);
    this.showMode();
    this.away.clear();
    this.awayClock();
    for (const element of this.sounds.values()) element.remove();
    this.sounds.clear();
    this.remote.srcObject = null;
    this.local.srcObject = null;
    this.drawings.clear();
    this.overlay.shapes = new Map();
    this.overlay.redraw();
    for (const button of this.root.querySelectorAll("button")) button.disabled = true;
  }
}

/**
 * Why a publisher is in its mode, in words, with what its link measured.
 * @param {string} reason @param {number | null} kbps @param {number | null} loss
 */
export function modeWhy(reason, kbps, loss) {
  const numbers = [kbps === null ? "" : `${kbps} kbit/s`,
    loss === null ? "" : t("{percent}% lost", { percent: Math.round(loss * 100) })]
    .filter(Boolean).join(", ");
  const words = { link_ok: t("good connection"), low_bandwidth: t("weak connection"),
    packet_loss: t("packets lost on the way") }[reason] || reason;
  return numbers ? `${words} (${numbers})` : words;
}
