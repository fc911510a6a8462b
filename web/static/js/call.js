// One person's part in a job's call: the signalling socket, the media connection and
// the local camera and microphone, kept going through network losses. No DOM here:
// the page listens to the events and draws (callview.js).
//
// A lost socket (network gone, server restarting) is reopened with the same token,
// and so is one that went silent (call-watch.js), on a schedule (call-retry.js),
// naming the participant this client was and the newest chat message it has
// (docs/protocol.md, Coming back). Back in the call as the same participant, it keeps
// its media connection if that still works; otherwise, and whenever the media
// connection fails, stays disconnected or carries nothing for a while (call-watch.js),
// a new one takes the old one's place on the server (`restart`). The camera
// (call-camera.js) is not asked for again: its tracks go on the new connection. A join
// the server refuses for now is tried again, saying why (call-endings.js).
//
// The parts, each keeping its own state: call-participants.js (who else is there and
// what they send), call-outbox.js (chat and drawings kept until they are through),
// call-mode.js (this client's media mode and stills), call-retry.js, call-watch.js.
import { LEFT, ending, refusal } from "./call-endings.js";
import { MediaConnection } from "./call-media.js";
import { OwnMode } from "./call-mode.js";
import { Outbox } from "./call-outbox.js";
import { Participants } from "./call-participants.js";
import { Reconnection } from "./call-retry.js";
import { WATCH_MS, socketLost } from "./call-watch.js";
import { t } from "./i18n.js";
import { Signalling } from "./signalling.js";

export { openCamera } from "./call-camera.js";
export { refusal } from "./call-endings.js";

/** @typedef {import("./signalling.js").Joined} Joined */

/**
 * Listen to the details of an EventTarget's events (CustomEvent).
 * @template T
 * @param {EventTarget} target @param {string} type @param {(detail: T) => void} handler
 */
function listen(target, type, handler) {
  target.addEventListener(type, (event) => handler(/** @type {CustomEvent<T>} */ (event).detail));
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
 * plus the server messages `open` passes on by their type (annotation.*, camera.state,
 * media.tracks, snapshot.saved, note.added, error...; detail: the message).
 */
export class Call extends EventTarget {
  /**
   * @param {{token: string, job?: number, stream: MediaStream, cameras?: number,
   *   notice?: string | null, resume?: number | null}} options
   *   `cameras`: how many the device has (openCamera's count); `notice`: what is wrong
   *   with the camera (openCamera's problem), said in place of "Connected" whenever the
   *   call is up; `resume`: the participant this page was before it was reloaded
   */
  constructor({ token, job, stream, cameras = 1, notice = null, resume = null }) {
    super();
    this.token = token;
    this.job = job;
    this.stream = stream;
    this.cameras = cameras;
    this.connectedText = notice || t("Connected");
    this.resume = resume;
    /** @type {Signalling | null} */
    this.signalling = null;
    /** Whether the current socket is in the call (its joined came). */
    this.ready = false;
    this.watchTimer = 0;
    /** @type {Joined | null} the last joined message */
    this.joined = null;
    this.over = false;
    /** @param {string} type @param {unknown} detail */
    const emit = (type, detail) => this.dispatchEvent(new CustomEvent(type, { detail }));
    const ready = () => this.ready;
    /** @param {object} message */
    const send = (message) => this.send(message);
    this.others = new Participants(emit);
    this.outbox = new Outbox({ ready, send, emit });
    this.connection = new MediaConnection({ stream, cameras, others: this.others, ready, emit,
      signalling: () => this.signalling, joined: () => this.joined, over: () => this.over,
      reconnecting: (text) => this.setState("reconnecting", text),
      connected: () => {
        if (this.state === "reconnecting" && this.ready) this.setState("connected", this.connectedText);
      },
    });
    this.mode = new OwnMode({ ready, send, emit,
      pc: () => (this.media ? this.media.pc : null),
      camera: () => this.stream.getVideoTracks()[0] || null,
      sendBinary: (frame) => Boolean(this.ready && this.signalling && this.signalling.sendBinary(frame)),
    });
    this.reconnection = new Reconnection({
      retry: () => this.retry(),
      offline: () => this.closed(1006, ""),
    });
  }

  /** @returns {number | null} this client's participant id */
  get me() {
    return this.joined ? this.joined.you.id : null;
  }

  /** The media connection now, if any. */
  get media() {
    return this.connection.link;
  }

  /** Everyone in the call but this client. */
  get participants() {
    return this.others.all;
  }

  /** What each other participant sends. */
  get streams() {
    return this.others.streams;
  }

  /** The last media.mode this client sent, if any. */
  get modeMessage() {
    return this.mode.message;
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
      this.connection.check();
    }, WATCH_MS);
    this.open();
  }

  open() {
    const signalling = new Signalling(this.token, this.job,
      { resume: this.me ?? this.resume, chatAfter: this.outbox.lastChatId });
    this.signalling = signalling;
    this.ready = false;
    /**
     * Listen to the socket while it is this call's.
     * @template T
     * @param {string} type @param {(detail: T) => void} handler
     */
    const on = (type, handler) => listen(signalling, type, (/** @type {T} */ detail) => {
      if (signalling === this.signalling) handler(detail);
    });
    for (const type of ["annotation.add", "annotation.remove", "annotation.clear",
      "annotation.pointer", "annotation.track", "camera.state", "media.tracks",
      "snapshot.saved", "note.added", "error", "participant.away", "participant.back",
      "media.mode", "still", "frozen", "freeze.ended"]) {
      on(type, (detail) => this.dispatchEvent(new CustomEvent(type, { detail })));
    }
    const { stills } = this.mode;
    signalling.addEventListener("still.relayed", (event) => {
      const { seq, next_in_s: nextInS } = /** @type {CustomEvent} */ (event).detail;
      stills.acknowledged(seq, nextInS);
    });
    signalling.addEventListener("error", (event) => {
      const { ref, seq } = /** @type {CustomEvent} */ (event).detail;
      if (ref === "still" && typeof seq === "number") stills.refused(seq);
    });
    on("chat.message", (/** @type {import("./signalling.js").ChatMessage} */ message) => {
      this.outbox.heard(message);
    });
    on("joined", (/** @type {Joined} */ message) => this.onJoined(message));
    const { others } = this;
    signalling.addEventListener("participant.joined", (event) => {
      others.set(/** @type {CustomEvent} */ (event).detail.participant);
    });
    signalling.addEventListener("participant.left", (event) => {
      others.left(/** @type {CustomEvent} */ (event).detail.participant.id);
    });
    signalling.addEventListener("participant.away", (event) => {
      const { participant, away_since: since, away_until: until } = /** @type {CustomEvent} */ (
        event).detail;
      others.set(participant, { away_since: since, away_until: until });
    });
    signalling.addEventListener("participant.back", (event) => {
      others.set(/** @type {CustomEvent} */ (event).detail.participant);
    });
    on("closed", (/** @type {{code: number, reason: string}} */ { code, reason }) => {
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
    if (!resumed) this.connection.stop(true);  // a new participant: a new media session too
    this.joined = message;
    this.ready = true;
    this.reconnection.succeeded();
    this.others.joined(message.participants);
    this.dispatchEvent(new CustomEvent("joined", { detail: message }));
    this.others.changed();
    this.outbox.joined(message.chat || [], message.you.id);
    this.setState("connected", this.connectedText);
    this.mode.joined(message.you.role);
    this.connection.inCall(resumed);
  }

  /**
   * Say something in the chat: sent now if the socket is in the call, else when it is
   * again; kept until it comes back from the server.
   * @param {string} text
   */
  sendChat(text) {
    if (!this.over) this.outbox.say(text);
  }

  /** The socket closed: end, or try again. @param {number} code @param {string} reason */
  closed(code, reason) {
    this.ready = false;
    if (this.over) return;
    const final = ending(code, reason);
    if (final) return this.end(final.text, final.reason);
    // The media connection is kept for now: if the server still has this participant,
    // it goes on (onJoined); the watch lets go of it if it fails meanwhile.
    const refused = refusal(code, reason, this.job !== undefined);
    const { over, text } = this.reconnection.lost(refused);
    if (over) return this.end(text, refused ? reason : "lost");
    this.setState("reconnecting", text);
  }

  /** A new socket, now. */
  retry() {
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
    if (!socketLost(signalling)) return;
    this.signalling = null;
    if (signalling.ws) signalling.ws.close();
    this.closed(1006, "");
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
    if (!this.over) this.outbox.draw(message);
  }

  /** Leave on purpose: camera and microphone off, connection closed. */
  leave() {
    // On a socket in the call, what was typed went before the leave and gets there:
    // the server takes a connection's messages in order.
    const delivered = this.ready;
    if (this.signalling) this.signalling.leave();
    this.end(LEFT, "left", delivered);
  }

  /** Let go of everything: no more tries, no watch, no media, camera off. */
  stop() {
    this.over = true;
    this.ready = false;
    this.reconnection.stop();
    clearInterval(this.watchTimer);
    this.mode.stop();
    this.connection.stop(false);
    for (const track of this.stream.getTracks()) track.stop();
  }

  /**
   * The page goes (reloaded, closed, put in the back-forward cache): camera and
   * connections let go of, without leaving the call, so that the page reloaded comes
   * back as the same participant (docs/protocol.md, Coming back). No "ended".
   */
  suspend() {
    if (this.over) return;
    this.stop();
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
    this.stop();
    if (this.signalling && this.signalling.ws) this.signalling.ws.close(1000);
    this.outbox.ended(delivered);
    this.setState("ended", text, reason);
  }
}
