// The live call on screen (web/templates/_call.html), for both faces:
//
// - "field" (a customer or technician on a phone): the phone's own camera is the big
//   picture, with the drawings aimed at it; the expert's camera is the small one.
// - "expert" (the console): the camera of the participant being helped is the big
//   picture, with the drawing tools, freeze-frame, snapshots and the remote camera
//   controls; one's own camera is the small one.
//
// Everything shown comes from the Call (call.js); nothing is stored on the device.
// CallView puts the screen's parts together and tells them what the call does; each
// part keeps its own state:
//
// - callview-pictures.js: the big and the small picture, one's own camera on or off;
// - callview-drawings.js: the drawings on each picture, and the expert's tools;
// - callview-freeze.js: the call's frozen picture (docs/protocol.md, Freeze);
// - callview-modes.js: the media mode and the stills in place of video;
// - callview-presence.js: who is away and who left lately;
// - callview-people.js: the list of the people in the call, and their sound;
// - callview-notices.js: notices over the phone's picture, the note over the big one;
// - callview-controls.js: the buttons on the camera and the call, and its clock.
import { setStatus } from "./api.js";
import { trouble } from "./call-endings.js";
import { Controls } from "./callview-controls.js";
import { Drawings, wireTools } from "./callview-drawings.js";
import { Freeze } from "./callview-freeze.js";
import { MediaModes } from "./callview-modes.js";
import { Notices, expertNote, fieldNote } from "./callview-notices.js";
import { Sounds, listPeople, whomToView } from "./callview-people.js";
import { Pictures } from "./callview-pictures.js";
import { Presence } from "./callview-presence.js";
import { attachChat } from "./chat.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { Overlay } from "./overlay.js";
import { watchQuality } from "./quality.js";
import { AnnotationTools } from "./tools.js";

export { modeWhy } from "./callview-modes.js";

/**
 * Events: "snapshot" (detail: the server's snapshot.saved, whoever asked for it).
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
    const field = layout === "field";
    /** @type {number | null} whose picture is big (expert) */
    this.viewing = null;
    /** @type {Map<number, {audio: boolean, video: boolean}>} what each one muted */
    this.muted = new Map();
    root.classList.add(`layout-${layout}`);
    this.pictures = new Pictures(root, field);
    this.overlay = new Overlay(this.pictures.canvas, this.pictures.big);
    this.drawings = new Drawings(this.overlay, () => this.target());
    this.tools = field ? null
      : new AnnotationTools(this.overlay, (m) => call.sendDrawing(m), () => this.viewing,
        () => this.live());
    this.freeze = new Freeze(root, { screen: this.pictures.screen, remote: this.pictures.remote,
      expert: !field, me: () => call.me, nameOf: (id) => this.nameOf(id),
      send: (message) => call.send(message), hold: (on) => this.overlay.hold(on) });
    this.modes = new MediaModes(root);
    /** Whether the big picture is live video, which a shape may be pinned on (not a
     * frozen frame, not stills). */
    this.live = () => {
      const id = this.target();
      return id !== null && !this.freeze.on(id) && !this.modes.inStills(id);
    };
    this.presence = new Presence(root, () => this.notes());
    this.sounds = new Sounds($("#sounds", HTMLElement, root));
    this.notices = new Notices(root, field);
    this.controls = new Controls(root, call, { expert: !field, staff, viewing: () => this.viewing,
      shapes: (camera) => [...this.drawings.of(camera).values()] });
    this.showLocal();
    this.showRemote();
    this.wire();
    this.stopQuality = watchQuality($('[data-region="quality"]', HTMLElement, root), {
      pc: () => (call.media ? call.media.pc : null),
      video: this.pictures.remote,
      expected: () => this.expected(),
      reconnecting: () => call.state === "reconnecting",
      staff: !field,  // customers and technicians get no round-trip jargon
      onPicture: (picture) => { if (this.pictures.pictureIs(picture)) this.notes(); },
    });
  }

  /** The participant whose picture carries the drawings shown. */
  target() {
    return this.layout === "field" ? this.call.me : this.viewing;
  }

  wire() {
    const { call, notices } = this;
    call.addEventListener("state", (event) => {
      const { state, text } = /** @type {CustomEvent} */ (event).detail;
      this.root.dataset.state = state;
      setStatus(text);  // over the phone's full-screen picture too: not a notice as well
      if (state === "ended") this.ended();
      else if (this.layout === "field") this.notes();  // nobody awaited while reconnecting
    });
    call.addEventListener("joined", (event) => {
      /** @type {import("./signalling.js").Joined} */
      const message = /** @type {CustomEvent} */ (event).detail;
      this.drawings.load(message.annotations);
      if (!message.resumed) {  // the same participant keeps what it knew of the others
        this.controls.forgetCameras();
        this.muted.clear();
        this.modes.reset();  // the server tells them again, right after joined
      }
      this.presence.joined(message.participants);
      // A freeze still on comes again right after joined; one ended meanwhile, or one
      // being taken when the connection was lost, is over.
      this.freeze.reset();
      this.freeze.show(this.target());
      this.drawings.show(this.target());
      this.controls.show();
    });
    call.addEventListener("participants", () => this.participantsChanged());
    call.addEventListener("participant.away", (event) => {
      /** @type {{participant: import("./signalling.js").Participant}} */
      const { participant } = /** @type {CustomEvent} */ (event).detail;
      this.presence.wentAway(participant);  // the server says so as soon as it sees it
      this.people();
      this.notes();
    });
    call.addEventListener("participant.back", (event) => {
      /** @type {{participant: import("./signalling.js").Participant}} */
      const { participant } = /** @type {CustomEvent} */ (event).detail;
      this.presence.cameBack(participant.id);
      this.people();
      this.notes();
    });
    call.addEventListener("stream", (event) => {
      /** @type {{participantId: number, stream: MediaStream | null}} */
      const { participantId, stream } = /** @type {CustomEvent} */ (event).detail;
      this.sounds.play(participantId, stream);
      this.pickView();
      this.showRemote();
      this.people();
    });
    call.addEventListener("localtrack", () => this.showLocal());
    call.addEventListener("media.mode", (event) => {
      this.modes.set(/** @type {CustomEvent} */ (event).detail);
      this.showMode();
    });
    call.addEventListener("still", (event) => {
      this.modes.add(/** @type {CustomEvent} */ (event).detail);
      this.showMode();
    });
    call.addEventListener("mode", () => this.showMode());
    call.addEventListener("frozen", (event) => {
      /** @type {import("./signalling.js").Frozen} */
      const frozen = /** @type {CustomEvent} */ (event).detail;
      this.freeze.received(frozen);
      this.freeze.show(this.target());
      if (this.layout === "field" && frozen.camera === call.me) {
        notices.tell(t("{name} froze your picture to draw on it.", { name: this.nameOf(frozen.by) }));
      }
    });
    call.addEventListener("freeze.ended", () => {
      const mine = this.freeze.over();
      this.freeze.show(this.target());
      if (this.layout === "field" && mine) notices.tell(t("Your picture is live again."));
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
      this.controls.cameraState(/** @type {CustomEvent} */ (event).detail);
    });
    for (const type of ["annotation.add", "annotation.remove", "annotation.clear",
      "annotation.pointer"]) {
      call.addEventListener(type, (event) => this.drawings.annotate(/** @type {CustomEvent} */ (event).detail));
    }
    call.addEventListener("annotation.track", (event) => {
      this.drawings.track(/** @type {CustomEvent} */ (event).detail);
    });
    call.addEventListener("snapshot.saved", (event) => {
      /** @type {import("./signalling.js").SnapshotSaved} */
      const message = /** @type {CustomEvent} */ (event).detail;
      if (this.controls.saved(message)) {
        setStatus(t("Snapshot saved to the job record."));  // after "Taking a snapshot…"
        this.controls.show();
      } else {
        notices.tell(t("A snapshot was saved to the job record."));
      }
      this.dispatchEvent(new CustomEvent("snapshot", { detail: message }));
    });
    call.addEventListener("error", (event) => {
      /** @type {import("./signalling.js").ErrorMessage} */
      const message = /** @type {CustomEvent} */ (event).detail;
      if (message.ref === "snapshot.request") this.controls.refused();
      if (message.ref === "freeze") this.freeze.refused(this.target());
      if (message.code !== "rate_limited") setStatus(trouble(message));
    });
    attachChat(call, $('[data-region="chat"]', HTMLElement, this.root),
      $("#chat-form", HTMLFormElement, this.root));
    call.addEventListener("chat.message", (event) => {
      notices.chat(/** @type {CustomEvent} */ (event).detail, call.me);
    });
    $('[data-action="camera"]', HTMLElement, this.root).addEventListener("click", () => {
      if (this.pictures.toggleCamera(call.stream, call.media)) this.showLocal();
    });
    if (this.tools) {
      wireTools(this.root, this.tools);
      $('[data-action="freeze"]', HTMLElement, this.root).addEventListener("click", () => {
        this.freeze.ask(!this.freeze.on(this.viewing), this.viewing);
      });
    }
  }

  /** Someone joined or left (or this client joined again). */
  participantsChanged() {
    const now = new Map([...this.call.participants.values()].map((p) => [p.id, p.name]));
    const { joined, left, gone } = this.presence.seen(now);
    for (const id of gone) this.modes.forget(id);
    for (const name of joined) this.notices.notice(t("{name} joined the call.", { name }));
    for (const name of left) this.notices.notice(t("{name} left the call.", { name }));
    this.pickView();
    this.people();
    this.notes();
  }

  /** What the remote picture should show: video, stills, a camera off on purpose, or
   * nothing. @returns {"video" | "stills" | "off" | "none"} */
  expected() {
    const id = this.pictures.remoteId;
    if (id === null || !this.pictures.remote.srcObject) return "none";
    if (this.muted.get(id)?.video) return "off";
    return this.modes.inStills(id) ? "stills" : "video";
  }

  showMode() {
    this.modes.show(this.layout === "expert", this.viewing, this.call.modeMessage);
    this.notes();
  }

  /** The expert looks at the participant they chose, else the likeliest one. */
  pickView() {
    if (this.layout !== "expert") return;
    const { participants, streams } = this.call;
    this.view(whomToView(participants.values(),
      (id) => Boolean(streams.get(id)?.getVideoTracks().length), this.viewing));
  }

  /** @param {number | null} id */
  view(id) {
    if (id === this.viewing) return;
    // Leaving a picture this expert froze resumes it for everyone; one someone else
    // froze stays frozen for the others, and this screen shows the live picture chosen.
    if (this.freeze.mine(this.viewing)) this.freeze.ask(false, this.viewing);
    this.viewing = id;
    this.freeze.show(this.target());
    this.overlay.pointers.clear();
    this.drawings.show(id);
    this.showRemote();
    this.people();
    this.controls.show();
    this.showMode();
  }

  showLocal() {
    this.pictures.showLocal(this.call.stream);
    if (this.layout === "field") this.notes();
    this.controls.show();
  }

  showRemote() {
    this.pictures.showRemote(this.call.streams, this.viewing);
    this.notes();
  }

  /** The words over the big picture: who is (not) there, and why no picture. */
  notes() {
    const { call, pictures, presence } = this;
    const left = presence.leftName();
    const leftWords = left === null ? null : t("{name} left the call.", { name: left });
    if (this.layout === "field") {
      return this.notices.screenNote(fieldNote({ left: leftWords, awaited: this.awaited,
        camera: call.stream.getVideoTracks().length > 0 && !pictures.cameraOff,
        others: call.participants.size > 0, ready: call.ready }));
    }
    const id = this.viewing;
    const who = id === null ? null : call.participants.get(id);
    this.notices.screenNote(expertNote({ name: who ? who.name : null, left: leftWords,
      away: presence.awayNote(id, pictures.remoteId !== null),
      paused: Boolean(id !== null && this.muted.get(id)?.video),
      shown: pictures.remoteId !== null, picture: pictures.picture,
      stillShown: this.modes.stillShown }));
  }

  people() {
    const { presence, call } = this;
    listPeople($('[data-region="participants"]', HTMLElement, this.root), call.participants.values(), {
      muted: (id) => Boolean(this.muted.get(id)?.audio),
      away: (id) => presence.awayFor(id),
      sends: (id) => Boolean(call.streams.get(id)?.getVideoTracks().length),
      view: this.layout === "expert" ? (id) => this.view(id) : null,
      viewing: this.viewing,
      remove: this.staff ? (id) => call.removeParticipant(id) : null,
    });
  }

  /** A participant's name, as the call lists them. @param {number} id */
  nameOf(id) {
    return this.call.participants.get(id)?.name ?? t("The expert");
  }

  ended() {
    this.controls.stop();
    this.stopQuality();
    this.freeze.reset();
    this.freeze.show(this.target());
    this.modes.forgetStills();
    this.showMode();
    this.presence.clear();
    this.sounds.clear();
    this.pictures.clear();
    this.drawings.clear();
    for (const button of this.root.querySelectorAll("button")) button.disabled = true;
  }
}
