// One person's part in a job's call: the signalling socket, the media connection and
// the local camera and microphone, kept going through network losses. No DOM here:
// the page listens to the events and draws (callview.js).
//
// A lost socket (network gone, server restarting) is reopened with the same token,
// and so is one that went silent: a ping after 4 s without a message, and no answer
// within 25 s more, gives it up as lost (a browser keeps a socket whose network went
// away "open" until TCP gives up, minutes later; the server already let it go).
// waiting 1, 2, 4, 8 then 10 seconds between tries, for up to five minutes, naming the
// participant this client was and the newest chat message it has (docs/protocol.md,
// Coming back). Back in the call as the same participant, it keeps its media
// connection if that still works; otherwise, and whenever the media connection fails,
// stays disconnected or carries nothing for a while, a new one takes the old one's
// place on the server (`restart`). The camera is not asked for again: its tracks go on
// the new connection. A join the server refuses for now (the call is full, too many
// connections or joins: 4429; 4400) is tried again every 10 seconds at most, saying
// why in words.
//
// Nothing typed is silently lost: each chat message carries a client_id, and is kept
// until it comes back from the server; after a reconnection the ones that did not are
// sent again (the server stores a message once per client_id), one typed while the
// socket is down waits for it ("chat.pending"), and those still waiting when the call
// ends are said not sent ("chat.unsent"). Drawings made while the socket is not in the
// call (shown here at once) wait for it too, and go in order once it is, after the
// call's own shapes are shown again.
//
// On a thin or lossy link the picture degrades step by step (adapt.js): reduced video,
// then, on a phone, stills of the camera over the socket (stills.js) with the audio;
// each change is told to the others (media.mode), and again after every join.
import { Adaptation } from "./adapt.js";
import { Signalling } from "./signalling.js";
import { MediaLink, countCameras } from "./media.js";
import { StillSender } from "./stills.js";
import { shownName } from "./format.js";
import { t } from "./i18n.js";

const RETRY_DELAYS_S = [1, 2, 4, 8, 10];
const GIVE_UP_AFTER_MS = 5 * 60 * 1000;
const REFUSED_RETRY_S = 10;
/** How often the media connection is looked at. */
const WATCH_MS = 1000;
/** A media connection disconnected this long is replaced (Chromium calls it failed
 * only after some 30 s). */
const DISCONNECTED_MS = 4000;
/** A connected media connection that received nothing this long is replaced: the
 * server's RTCP reports on what this client sends come every 0.5 to 1.5 s. */
const SILENT_MS = 8000;
/** A new media connection not connected this long, or a restart not answered, is
 * replaced again: wide, for a loaded machine or a slow TURN allocation. */
const CONNECT_MS = 20000;
/** A socket that received nothing this long is sent a ping... */
const PING_AFTER_MS = 4000;
/** ...and given up as lost when nothing came this long after the ping: about when the
 * server lets it go (15 s + 7.5 s of silence), and longer than a server's stall of
 * 25 s, after which the socket goes on with everything sent on it meanwhile (a new
 * socket would lose the shapes drawn on the old one: they are not sent again). */
const PONG_WITHIN_MS = 25000;
/** Drawings kept while the socket is down, at most: the server keeps 200 shapes on a
 * picture (the oldest go first), so more would be dropped there anyway. */
const MAX_DRAWINGS_WAITING = 200;
/** After the server refused an offer, the next one waits this long (its offer rate). */
const OFFER_RETRY_MS = 2000;

/** @typedef {import("./signalling.js").Joined} Joined */
/** @typedef {import("./signalling.js").Participant} Participant */

/**
 * A participant as this page names them (format.js shownName): "Kunde" for a customer
 * nobody named, on a German page.
 * @param {Participant} participant @returns {Participant}
 */
const named = (participant) => ({ ...participant, name: shownName(participant) });

/**
 * Close reasons that end the call for good, in words.
 * @type {Record<string, string>}
 */
const ENDINGS = {
  left: t("You left the call."),
  call_ended: t("The call has ended."),
  job_closed: t("The call has ended: the job was closed."),
  unauthorized: t("This link is no longer valid. Ask for a new one."),
  session_expired: t("Your session has expired. Sign in again."),
  account_disabled: t("You have been signed out."),
  signed_out: t("You have been signed out. Sign in again."),
  link_revoked: t("This link was withdrawn. Ask for a new one."),
  removed: t("You were removed from the call."),
  replaced: t("The call goes on in another tab or window."),
  forbidden: t("This call is not open to you."),
  not_found: t("This job no longer exists."),
};

/**
 * Why the server refused to let this client in for now, in words (docs/protocol.md:
 * close 4429 and 4400), or null for any other close.
 * @param {number} code the close code
 * @param {string} reason the close reason
 * @param {boolean} staff whether the client came with a staff account, not a link
 * @returns {string | null}
 */
export function refusal(code, reason, staff) {
  if (code === 4400) return t("The server did not accept this page's messages.");
  if (code !== 4429) return null;
  if (reason === "call_full") return t("This call is full.");
  if (reason === "too_many_connections") {
    return staff
      ? t("Too many connections from your account: close the call in your other tabs or windows.")
      : t("Too many connections from this link: close the other tabs or windows where it is open.");
  }
  return t("Too many joins in a short time.");
}

/**
 * Open the camera (rear by default) and microphone, as far as the device allows.
 * @returns {Promise<{stream: MediaStream, problem: string | null}>} the stream, maybe
 *   without video or without anything, and what went wrong in words
 */
export async function openCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { stream: new MediaStream(),
      problem: t("This browser cannot share a camera here. Open the link in Chrome or Safari.") };
  }
  const video = { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } };
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video, audio: true });
    await countCameras();
    return { stream, problem: null };
  } catch (error) {
    const name = /** @type {Error} */ (error).name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return { stream: new MediaStream(), problem: t("Camera and microphone are blocked. Allow " +
        "them for this site in the browser's settings, then join again with a new link.") };
    }
    // No camera, or it is busy: try the microphone alone.
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      return { stream, problem: name === "NotReadableError"
        ? t("The camera is busy in another app. Close it, then switch the camera on again.")
        : t("No camera was found. You can still talk and chat.") };
    } catch {
      return { stream: new MediaStream(),
        problem: t("The camera and microphone could not be started. Is another app using them?") };
    }
  }
}

/**
 * A fresh id for a message, by which a resend is known (docs/protocol.md, chat.message).
 * @returns {string}
 */
function clientId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Events: "state" (detail: {state: "connecting" | "connected" | "reconnecting" |
 * "ended", text, reason}: when ended, the server's close reason, "left" or "lost"),
 * "joined" (detail: the joined message), "participants" (detail: Map of id to
 * participant; one who is away carries `away_since` and `away_until`), "stream"
 * (detail: {participantId, stream}), "media" (detail: the peer connection state),
 * "chat.message" (detail: the server's chat.message, each message once),
 * "chat.pending" (detail: {client_id, text}: a message typed here, not back from the
 * server yet), "chat.unsent" (detail: {client_id}: one that never got there),
 * "mode" (detail: this client's own media mode, as sent in media.mode), "still"
 * (detail: another participant's still), "frozen" (detail: the call's frozen picture),
 * plus every other server message by its type (detail: the message).
 */
export class Call extends EventTarget {
  /**
   * @param {{token: string, job?: number, stream: MediaStream, notice?: string | null,
   *   resume?: number | null}} options
   *   `notice`: what is wrong with the camera (openCamera's problem), said in place of
   *   "Connected" whenever the call is up; `resume`: the participant this page was
   *   before it was reloaded
   */
  constructor({ token, job, stream, notice = null, resume = null }) {
    super();
    this.token = token;
    this.job = job;
    this.stream = stream;
    this.connectedText = notice || t("Connected");
    this.resume = resume;
    /** @type {Signalling | null} */
    this.signalling = null;
    /** Whether the current socket is in the call (its joined came). */
    this.ready = false;
    /** @type {MediaLink | null} */
    this.media = null;
    /** @type {Joined | null} the last joined message */
    this.joined = null;
    /** @type {Map<number, Participant>} everyone in the call but this client */
    this.participants = new Map();
    /** @type {Map<number, MediaStream>} what each other participant sends */
    this.streams = new Map();
    /** @type {Set<number>} the chat messages shown, by id */
    this.chatSeen = new Set();
    this.lastChatId = 0;
    /** @type {Map<string, string>} chat sent from here and not back yet: client_id, text */
    this.unconfirmed = new Map();
    /** @type {({type: string, target: number} & Record<string, unknown>)[]} annotation
     * messages made while the socket was not in the call, oldest first */
    this.drawingsWaiting = [];
    this.tries = 0;
    this.lostAt = 0;
    this.over = false;
    this.retryTimer = 0;
    /** @type {{since: number, bytes: number | null, changed: number, busy: boolean}} */
    this.watch = { since: 0, bytes: null, changed: 0, busy: false };
    this.watchTimer = 0;
    /** @type {Adaptation | null} this publisher's media mode, once joined */
    this.adaptation = null;
    /** @type {{type: "media.mode", mode: string, reason: string, kbps: number | null,
     *   loss: number | null} | null} the last media.mode sent */
    this.modeMessage = null;
    this.stills = new StillSender({
      camera: () => this.stream.getVideoTracks()[0] || null,
      send: (frame) => Boolean(this.ready && this.signalling && this.signalling.sendBinary(frame)),
    });
    this.onOnline = () => { if (this.retryTimer) this.retryNow(); };
    addEventListener("online", this.onOnline);
  }

  /** @returns {number | null} this client's participant id */
  get me() {
    return this.joined ? this.joined.you.id : null;
  }

  /**
   * @param {string} state
   * @param {string} text
   * @param {string} [reason] why it ended: the server's close reason, or "left"
   */
  setState(state, text, reason) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, text, reason } }));
  }

  start() {
    this.setState("connecting", t("Connecting…"));
    this.watchTimer = setInterval(() => {
      this.watchSocket();
      this.watchMedia();
    }, WATCH_MS);
    this.open();
  }

  open() {
    const signalling = new Signalling(this.token, this.job,
      { resume: this.me ?? this.resume, chatAfter: this.lastChatId });
    this.signalling = signalling;
    this.ready = false;
    /** @param {Event} event */
    const forward = (event) => {
      if (signalling !== this.signalling) return;
      const detail = /** @type {CustomEvent} */ (event).detail;
      this.dispatchEvent(new CustomEvent(event.type, { detail }));
    };
    for (const type of ["annotation.add", "annotation.remove",
      "annotation.clear", "annotation.pointer", "camera.state", "media.tracks",
      "snapshot.saved", "note.added", "error", "participant.away", "participant.back",
      "media.mode", "still", "frozen", "freeze.ended"]) {
      signalling.addEventListener(type, forward);
    }
    signalling.addEventListener("still.relayed", (event) => {
      const { seq, next_in_s: nextInS } = /** @type {CustomEvent} */ (event).detail;
      this.stills.acknowledged(seq, nextInS);
    });
    signalling.addEventListener("error", (event) => {
      const { ref, seq } = /** @type {CustomEvent} */ (event).detail;
      if (ref === "still" && typeof seq === "number") this.stills.refused(seq);
    });
    signalling.addEventListener("chat.message", (event) => {
      if (signalling === this.signalling) this.chatLine(/** @type {CustomEvent} */ (event).detail);
    });
    signalling.addEventListener("joined", (event) => {
      if (signalling === this.signalling) this.onJoined(/** @type {CustomEvent} */ (event).detail);
    });
    signalling.addEventListener("participant.joined", (event) => {
      /** @type {Participant} */
      const p = /** @type {CustomEvent} */ (event).detail.participant;
      this.participants.set(p.id, named(p));
      this.dispatchEvent(new CustomEvent("participants", { detail: this.participants }));
    });
    signalling.addEventListener("participant.left", (event) => {
      /** @type {Participant} */
      const p = /** @type {CustomEvent} */ (event).detail.participant;
      this.participants.delete(p.id);
      this.dropStream(p.id);
      this.dispatchEvent(new CustomEvent("participants", { detail: this.participants }));
    });
    signalling.addEventListener("participant.away", (event) => {
      const { participant, away_since: since, away_until: until } = /** @type {CustomEvent} */ (
        event).detail;
      this.participants.set(participant.id,
        { ...named(participant), away_since: since, away_until: until });
      this.dispatchEvent(new CustomEvent("participants", { detail: this.participants }));
    });
    signalling.addEventListener("participant.back", (event) => {
      /** @type {Participant} */
      const p = /** @type {CustomEvent} */ (event).detail.participant;
      this.participants.set(p.id, named(p));
      this.dispatchEvent(new CustomEvent("participants", { detail: this.participants }));
    });
    signalling.addEventListener("closed", (event) => {
      if (signalling !== this.signalling) return;
      const { code, reason } = /** @type {CustomEvent} */ (event).detail;
      this.closed(code, reason);
    });
    signalling.connect();
  }

  /**
   * In the call on the current socket: as the same participant (`resumed`), or anew.
   * @param {Joined} message
   */
  onJoined(message) {
    const resumed = Boolean(message.resumed);
    if (!resumed) this.stopMedia(true);  // a new participant: a new media session too
    this.joined = message;
    this.ready = true;
    this.tries = 0;
    this.lostAt = 0;
    this.participants = new Map(message.participants.map((p) => [p.id, named(p)]));
    for (const id of [...this.streams.keys()]) if (!this.participants.has(id)) this.dropStream(id);
    this.dispatchEvent(new CustomEvent("joined", { detail: message }));
    this.dispatchEvent(new CustomEvent("participants", { detail: this.participants }));
    // The chat said while away, each message once; then what was typed here that did
    // not come back, again with its client_id (the server stores it once).
    // (`replayed`: said before this page joined; not news, CallView.notice.)
    for (const line of message.chat || []) {
      this.chatLine({ type: "chat.message", message: line, replayed: true });
    }
    for (const [id, text] of this.unconfirmed) {
      this.send({ type: "chat.message", text, client_id: id });
    }
    // What was drawn while away: sent now, and shown again over the call's shapes
    // (the "joined" listeners just replaced them with the server's).
    for (const drawing of this.drawingsWaiting.splice(0)) {
      this.send(drawing);
      this.dispatchEvent(new CustomEvent(drawing.type, { detail: { ...drawing, from: this.me } }));
    }
    this.setState("connected", this.connectedText);
    this.adapt(message.you.role);
    const media = this.media;
    if (resumed && media && media.pc.connectionState === "connected" && !media.restarting) {
      media.rebind(/** @type {Signalling} */ (this.signalling));  // it goes on
    } else {
      this.stopMedia(true);
      this.startMedia(resumed);
    }
  }

  /**
   * Keep this publisher's media mode from now on (once), and tell it again after a
   * join: the server forgets a participant's mode when it leaves.
   * @param {string} role
   */
  adapt(role) {
    if (this.modeMessage) this.send(this.modeMessage);
    if (this.adaptation) return;
    const adaptation = new Adaptation({
      pc: () => (this.media ? this.media.pc : null),
      // Only a phone goes to stills: a customer or a technician by link.
      stills: role === "customer" || role === "technician",
      stillKbps: () => this.stills.kbps,
    });
    this.adaptation = adaptation;
    adaptation.addEventListener("mode", (event) => {
      const { mode, reason, kbps, loss } = /** @type {CustomEvent} */ (event).detail;
      this.modeMessage = { type: "media.mode", mode, reason, kbps, loss };
      if (this.ready) this.send(this.modeMessage);
      if (mode === "stills") this.stills.start(); else this.stills.stop();
      this.dispatchEvent(new CustomEvent("mode", { detail: this.modeMessage }));
    });
  }

  /**
   * A chat.message from the server (or one of joined's chat): shown once, and the
   * one typed here with its client_id is no longer waiting.
   * @param {import("./signalling.js").ChatMessage} message
   */
  chatLine(message) {
    const { id } = message.message;
    const mine = message.client_id !== undefined && this.unconfirmed.delete(message.client_id);
    if (this.chatSeen.has(id) && !mine) return;
    this.chatSeen.add(id);
    this.lastChatId = Math.max(this.lastChatId, id);
    this.dispatchEvent(new CustomEvent("chat.message", { detail: message }));
  }

  /**
   * Say something in the chat: sent now if the socket is in the call, else when it is
   * again; kept until it comes back from the server.
   * @param {string} text
   */
  sendChat(text) {
    if (this.over) return;
    const id = clientId();
    this.unconfirmed.set(id, text);
    this.dispatchEvent(new CustomEvent("chat.pending", { detail: { client_id: id, text } }));
    if (this.ready) this.send({ type: "chat.message", text, client_id: id });
  }

  /** The socket closed: end, or try again. @param {number} code @param {string} reason */
  closed(code, reason) {
    this.ready = false;
    if (this.over) return;
    if (code === 4410) return this.end(ENDINGS.replaced, "replaced");
    if (code === 1000 || code === 4401 || code === 4403) {
      return this.end(ENDINGS[reason] || t("The call has ended."), reason);
    }
    // The media connection is kept for now: if the server still has this participant,
    // it goes on (onJoined); the watch lets go of it if it fails meanwhile.
    const refused = refusal(code, reason, this.job !== undefined);
    if (!this.lostAt) this.lostAt = Date.now();
    if (Date.now() - this.lostAt > GIVE_UP_AFTER_MS) {
      if (refused) return this.end(`${refused} ${t("Try again later.")}`, reason);
      return this.end(t("The connection could not be restored. Check the network; the " +
        "person who invited you can send a new link."), "lost");
    }
    let delay = RETRY_DELAYS_S[Math.min(this.tries, RETRY_DELAYS_S.length - 1)];
    if (refused) delay = Math.max(delay, REFUSED_RETRY_S);
    this.tries += 1;
    this.setState("reconnecting", refused
      ? `${refused} ${t("Trying again in {delay} s…", { delay })}`
      : navigator.onLine === false ? t("No network. Waiting for it to come back…")
        : t("Connection lost. Reconnecting in {delay} s…", { delay }));
    this.retryTimer = setTimeout(() => {
      // Offline by the browser's word, a try cannot reach anyone (and says so in the
      // console): the schedule goes on without it, so giving up still comes in time,
      // and the "online" event tries at once.
      if (navigator.onLine === false) {
        this.retryTimer = 0;
        this.closed(1006, "");
      } else {
        this.retryNow();
      }
    }, delay * 1000);
  }

  retryNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    if (this.over) return;
    this.setState("reconnecting", t("Reconnecting…"));
    this.open();
  }

  /**
   * Look at the socket (every WATCH_MS): one in the call that answers no ping is given
   * up as a lost connection, left as it is (its events ignored from now on), and the
   * schedule of a lost socket begins; the media connection is kept meanwhile.
   */
  watchSocket() {
    const signalling = this.signalling;
    if (!signalling || !this.ready || this.over) return;
    if (!signalling.dead(PING_AFTER_MS, PONG_WITHIN_MS)) return;
    this.signalling = null;
    if (signalling.ws) signalling.ws.close();
    this.closed(1006, "");
  }

  /**
   * Look at the media connection (every WATCH_MS): one that failed, stays
   * disconnected, never connects, receives nothing any more, or whose restart is not
   * answered is replaced by a new one on the open socket (docs/protocol.md, Coming
   * back). While the socket is down a failed one is let go; onJoined starts anew.
   */
  async watchMedia() {
    const media = this.media;
    const { watch } = this;
    if (!media || this.over || watch.busy) return;
    const now = Date.now();
    const state = media.pc.connectionState;
    if (state === "failed" || state === "closed") {
      if (this.ready) return this.restartMedia();
      return this.stopMedia(true);
    }
    if (!this.ready) return;
    if (state !== "connected") {
      watch.bytes = null;
      const limit = state === "disconnected" ? DISCONNECTED_MS : CONNECT_MS;
      if (now - watch.since > limit) this.restartMedia();
      return;
    }
    watch.since = now;
    if (!this.stream.getTracks().some((track) => track.readyState === "live")) return;
    watch.busy = true;
    try {
      const bytes = await media.bytesReceived();
      if (media !== this.media) return;
      if (bytes === null || bytes !== watch.bytes) {
        watch.bytes = bytes;
        watch.changed = now;
      } else if (now - watch.changed > SILENT_MS) {
        this.restartMedia();
      }
    } finally {
      watch.busy = false;
    }
  }

  /** A new media connection in place of the one that does not work, on the open socket. */
  restartMedia() {
    if (this.over || !this.ready) return;
    this.stopMedia(true);
    this.setState("reconnecting", t("The video connection was lost. Reconnecting…"));
    this.startMedia(true);
  }

  /** @param {boolean} [restart] it takes the place of this participant's media session */
  startMedia(restart = false) {
    if (!this.signalling || !this.joined || this.over) return;
    const media = new MediaLink(this.signalling, this.joined);
    this.media = media;
    this.watch = { since: Date.now(), bytes: null, changed: Date.now(), busy: false };
    media.addEventListener("track", (event) => {
      /** @type {{track: MediaStreamTrack, participantId: number | null}} */
      const { track, participantId } = /** @type {CustomEvent} */ (event).detail;
      if (participantId === null) return;
      // A reused m-section: its track now carries this participant, nobody else.
      for (const [id, other] of this.streams) {
        if (id === participantId || !other.getTracks().includes(track)) continue;
        other.removeTrack(track);
        this.dispatchEvent(new CustomEvent("stream", { detail: { participantId: id, stream: other } }));
      }
      let stream = this.streams.get(participantId);
      if (!stream) {
        stream = new MediaStream();
        this.streams.set(participantId, stream);
      }
      for (const old of stream.getTracks()) if (old.kind === track.kind) stream.removeTrack(old);
      stream.addTrack(track);
      this.dispatchEvent(new CustomEvent("stream", { detail: { participantId, stream } }));
    });
    media.addEventListener("localtrack", (event) => {
      /** @type {MediaStreamTrack} */
      const track = /** @type {CustomEvent} */ (event).detail;
      for (const old of this.stream.getVideoTracks()) this.stream.removeTrack(old);
      this.stream.addTrack(track);
      this.dispatchEvent(new CustomEvent("localtrack", { detail: track }));
    });
    media.addEventListener("camera", (event) => {
      this.dispatchEvent(new CustomEvent("camera.state",
        { detail: /** @type {CustomEvent} */ (event).detail }));
    });
    media.addEventListener("refused", () => {
      // Not taken (too many offers, no media port free...): a new connection, soon.
      setTimeout(() => { if (media === this.media) this.restartMedia(); }, OFFER_RETRY_MS);
    });
    media.addEventListener("state", (event) => {
      /** @type {RTCPeerConnectionState} */
      const state = /** @type {CustomEvent} */ (event).detail;
      if (media !== this.media) return;
      this.dispatchEvent(new CustomEvent("media", { detail: state }));
      if (state === "failed") {
        this.watchMedia();  // replaced at once, not at the next look
      } else if (state === "connected" && this.state === "reconnecting" && this.ready) {
        this.setState("connected", this.connectedText);
      }
    });
    media.publish(this.stream, { restart }).then(() => {
      // A microphone or camera muted before a reconnection stays muted, and says so.
      for (const kind of /** @type {("audio" | "video")[]} */ (["audio", "video"])) {
        const tracks = kind === "audio" ? this.stream.getAudioTracks() : this.stream.getVideoTracks();
        if (tracks.length && tracks.every((track) => !track.enabled)) media.mute(kind, true);
      }
    }).catch((error) => {
      console.error("publishing failed", error);
      this.setState("reconnecting", t("The video could not be started. Trying again…"));
    });
  }

  stopAdapting() {
    if (this.adaptation) this.adaptation.stop();
    this.stills.stop();
  }

  /** @param {boolean} keepTracks */
  stopMedia(keepTracks) {
    if (this.media) this.media.close({ keepTracks });
    this.media = null;
    for (const id of [...this.streams.keys()]) this.dropStream(id);
  }

  /** @param {number} participantId */
  dropStream(participantId) {
    const stream = this.streams.get(participantId);
    if (!stream) return;
    this.streams.delete(participantId);
    this.dispatchEvent(new CustomEvent("stream", { detail: { participantId, stream: null } }));
  }

  /** @param {object} message */
  send(message) {
    if (this.signalling) this.signalling.send(message);
  }

  /**
   * Send an annotation message: now if the socket is in the call, else once it is
   * again (a pointer's position only now: it means nothing later).
   * @param {{type: string, target: number} & Record<string, unknown>} message
   */
  sendDrawing(message) {
    if (this.over) return;
    if (this.ready) return this.send(message);
    if (message.type === "annotation.pointer") return;
    if (this.drawingsWaiting.length < MAX_DRAWINGS_WAITING) this.drawingsWaiting.push(message);
  }

  /** Leave on purpose: camera and microphone off, connection closed. */
  leave() {
    // On a socket in the call, what was typed went before the leave and gets there:
    // the server takes a connection's messages in order.
    const delivered = this.ready;
    if (this.signalling) this.signalling.leave();
    this.end(ENDINGS.left, "left", delivered);
  }

  /**
   * The page goes (reloaded, closed, put in the back-forward cache): camera and
   * connections let go of, without leaving the call, so that the page reloaded comes
   * back as the same participant (docs/protocol.md, Coming back). No "ended".
   */
  suspend() {
    if (this.over) return;
    this.over = true;
    this.ready = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchTimer);
    removeEventListener("online", this.onOnline);
    this.stopAdapting();
    this.stopMedia(false);
    for (const track of this.stream.getTracks()) track.stop();
    if (this.signalling && this.signalling.ws) this.signalling.ws.close();
  }

  /** Ask the server to end the call for everyone (staff). */
  endForAll() {
    this.send({ type: "call.end" });
  }

  /**
   * Remove a participant who came by a join link, for good (staff).
   * @param {number} participantId
   */
  removeParticipant(participantId) {
    this.send({ type: "participant.remove", target: participantId });
  }

  /**
   * @param {string} text @param {string} reason
   * @param {boolean} [delivered] the chat not back yet was sent all the same
   */
  end(text, reason, delivered = false) {
    if (this.over) return;
    this.over = true;
    this.ready = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchTimer);
    removeEventListener("online", this.onOnline);
    this.stopAdapting();
    this.stopMedia(false);
    for (const track of this.stream.getTracks()) track.stop();
    if (this.signalling && this.signalling.ws) this.signalling.ws.close(1000);
    if (!delivered) {
      for (const id of this.unconfirmed.keys()) {
        this.dispatchEvent(new CustomEvent("chat.unsent", { detail: { client_id: id } }));
      }
    }
    this.unconfirmed.clear();
    this.setState("ended", text, reason);
  }
}
