// One person's part in a job's call: the signalling socket, the media connection and
// the local camera and microphone, kept going through network losses. No DOM here:
// the page listens to the events and draws (callview.js).
//
// A lost socket (network gone, server restarting) is reopened with the same token,
// waiting 1, 2, 4, 8 then 10 seconds between tries, for up to five minutes; a failed
// media connection is started again on the open socket. The camera is not asked for
// again: its tracks go on the new connection. A join the server refuses for now (the
// call is full, too many connections or joins: 4429; 4400) is tried again every 10
// seconds at most, saying why in words.
import { Signalling } from "./signalling.js";
import { MediaLink, countCameras } from "./media.js";

const RETRY_DELAYS_S = [1, 2, 4, 8, 10];
const GIVE_UP_AFTER_MS = 5 * 60 * 1000;
const MEDIA_RESTART_MS = 1000;
const REFUSED_RETRY_S = 10;

/** @typedef {import("./signalling.js").Joined} Joined */
/** @typedef {import("./signalling.js").Participant} Participant */

/**
 * Close reasons that end the call for good, in words.
 * @type {Record<string, string>}
 */
const ENDINGS = {
  left: "You left the call.",
  call_ended: "The call has ended.",
  job_closed: "The call has ended: the job was closed.",
  unauthorized: "This link is no longer valid. Ask for a new one.",
  session_expired: "Your session has expired. Sign in again.",
  account_disabled: "You have been signed out.",
  signed_out: "You have been signed out. Sign in again.",
  link_revoked: "This link was withdrawn. Ask for a new one.",
  removed: "You were removed from the call.",
  forbidden: "This call is not open to you.",
  not_found: "This job no longer exists.",
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
  if (code === 4400) return "The server did not accept this page's messages.";
  if (code !== 4429) return null;
  if (reason === "call_full") return "This call is full.";
  if (reason === "too_many_connections") {
    return staff
      ? "Too many connections from your account: close the call in your other tabs or windows."
      : "Too many connections from this link: close the other tabs or windows where it is open.";
  }
  return "Too many joins in a short time.";
}

/**
 * Open the camera (rear by default) and microphone, as far as the device allows.
 * @returns {Promise<{stream: MediaStream, problem: string | null}>} the stream, maybe
 *   without video or without anything, and what went wrong in words
 */
export async function openCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { stream: new MediaStream(),
      problem: "This browser cannot share a camera here. Open the link in Chrome or Safari." };
  }
  const video = { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } };
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video, audio: true });
    await countCameras();
    return { stream, problem: null };
  } catch (error) {
    const name = /** @type {Error} */ (error).name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return { stream: new MediaStream(), problem: "Camera and microphone are blocked. Allow " +
        "them for this site in the browser's settings, then join again with a new link." };
    }
    // No camera, or it is busy: try the microphone alone.
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      return { stream, problem: name === "NotReadableError"
        ? "The camera is busy in another app. Close it, then switch the camera on again."
        : "No camera was found. You can still talk and chat." };
    } catch {
      return { stream: new MediaStream(),
        problem: "The camera and microphone could not be started. Is another app using them?" };
    }
  }
}

/**
 * Events: "state" (detail: {state: "connecting" | "connected" | "reconnecting" |
 * "ended", text, reason}: when ended, the server's close reason, "left" or "lost"), "joined" (detail: the joined message), "participants" (detail: Map
 * of id to participant), "stream" (detail: {participantId, stream}), "media" (detail:
 * the peer connection state), plus every server message by its type (detail: the
 * message).
 */
export class Call extends EventTarget {
  /**
   * @param {{token: string, job?: number, stream: MediaStream, notice?: string | null}} options
   *   `notice`: what is wrong with the camera (openCamera's problem), said in place of
   *   "Connected" whenever the call is up
   */
  constructor({ token, job, stream, notice = null }) {
    super();
    this.token = token;
    this.job = job;
    this.stream = stream;
    this.connectedText = notice || "Connected";
    /** @type {Signalling | null} */
    this.signalling = null;
    /** @type {MediaLink | null} */
    this.media = null;
    /** @type {Joined | null} the last joined message */
    this.joined = null;
    /** @type {Map<number, Participant>} everyone in the call but this client */
    this.participants = new Map();
    /** @type {Map<number, MediaStream>} what each other participant sends */
    this.streams = new Map();
    this.tries = 0;
    this.lostAt = 0;
    this.over = false;
    this.retryTimer = 0;
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
    this.setState("connecting", "Connecting…");
    this.open();
  }

  open() {
    const signalling = new Signalling(this.token, this.job);
    this.signalling = signalling;
    /** @param {Event} event */
    const forward = (event) => {
      if (signalling !== this.signalling) return;
      const detail = /** @type {CustomEvent} */ (event).detail;
      this.dispatchEvent(new CustomEvent(event.type, { detail }));
    };
    for (const type of ["chat.message", "annotation.add", "annotation.remove",
      "annotation.clear", "annotation.pointer", "camera.state", "media.tracks",
      "snapshot.saved", "note.added", "error", "participant.away", "participant.back"]) {
      signalling.addEventListener(type, forward);
    }
    signalling.addEventListener("joined", (event) => {
      /** @type {Joined} */
      const message = /** @type {CustomEvent} */ (event).detail;
      this.joined = message;
      this.tries = 0;
      this.lostAt = 0;
      this.participants = new Map(message.participants.map((p) => [p.id, p]));
      this.streams.clear();
      this.dispatchEvent(new CustomEvent("joined", { detail: message }));
      this.dispatchEvent(new CustomEvent("participants", { detail: this.participants }));
      this.setState("connected", this.connectedText);
      this.startMedia();
    });
    signalling.addEventListener("participant.joined", (event) => {
      /** @type {Participant} */
      const p = /** @type {CustomEvent} */ (event).detail.participant;
      this.participants.set(p.id, p);
      this.dispatchEvent(new CustomEvent("participants", { detail: this.participants }));
    });
    signalling.addEventListener("participant.left", (event) => {
      /** @type {Participant} */
      const p = /** @type {CustomEvent} */ (event).detail.participant;
      this.participants.delete(p.id);
      this.dropStream(p.id);
      this.dispatchEvent(new CustomEvent("participants", { detail: this.participants }));
    });
    signalling.addEventListener("closed", (event) => {
      if (signalling !== this.signalling) return;
      const { code, reason } = /** @type {CustomEvent} */ (event).detail;
      this.closed(code, reason);
    });
    signalling.connect();
  }

  /** The socket closed: end, or try again. @param {number} code @param {string} reason */
  closed(code, reason) {
    this.stopMedia(true);
    if (this.over) return;
    if (code === 1000 || code === 4401 || code === 4403) {
      return this.end(ENDINGS[reason] || "The call has ended.", reason);
    }
    const refused = refusal(code, reason, this.job !== undefined);
    if (!this.lostAt) this.lostAt = Date.now();
    if (Date.now() - this.lostAt > GIVE_UP_AFTER_MS) {
      if (refused) return this.end(`${refused} Try again later.`, reason);
      return this.end("The connection could not be restored. Check the network; the " +
        "person who invited you can send a new link.", "lost");
    }
    let delay = RETRY_DELAYS_S[Math.min(this.tries, RETRY_DELAYS_S.length - 1)];
    if (refused) delay = Math.max(delay, REFUSED_RETRY_S);
    this.tries += 1;
    this.setState("reconnecting", refused ? `${refused} Trying again in ${delay} s…`
      : navigator.onLine === false ? "No network. Waiting for it to come back…"
        : `Connection lost. Reconnecting in ${delay} s…`);
    this.retryTimer = setTimeout(() => this.retryNow(), delay * 1000);
  }

  retryNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    if (this.over) return;
    this.setState("reconnecting", "Reconnecting…");
    this.open();
  }

  startMedia() {
    if (!this.signalling || !this.joined || this.over) return;
    const media = new MediaLink(this.signalling, this.joined);
    this.media = media;
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
    media.addEventListener("state", (event) => {
      /** @type {RTCPeerConnectionState} */
      const state = /** @type {CustomEvent} */ (event).detail;
      if (media !== this.media) return;
      this.dispatchEvent(new CustomEvent("media", { detail: state }));
      if (state === "failed") {
        // The server dropped this media session; the next offer starts a new one.
        this.stopMedia(true);
        this.setState("reconnecting", "The video connection was lost. Reconnecting…");
        setTimeout(() => {
          if (!this.media && this.state !== "ended") this.startMedia();
        }, MEDIA_RESTART_MS);
      } else if (state === "connected" && this.state === "reconnecting") {
        this.setState("connected", this.connectedText);
      }
    });
    media.publish(this.stream).then(() => {
      // A microphone or camera muted before a reconnection stays muted, and says so.
      for (const kind of /** @type {("audio" | "video")[]} */ (["audio", "video"])) {
        const tracks = kind === "audio" ? this.stream.getAudioTracks() : this.stream.getVideoTracks();
        if (tracks.length && tracks.every((t) => !t.enabled)) media.mute(kind, true);
      }
    }).catch((error) => {
      console.error("publishing failed", error);
      this.setState("reconnecting", "The video could not be started. Trying again…");
    });
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

  /** Leave on purpose: camera and microphone off, connection closed. */
  leave() {
    if (this.signalling) this.signalling.leave();
    this.end(ENDINGS.left, "left");
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

  /** @param {string} text @param {string} reason */
  end(text, reason) {
    if (this.over) return;
    this.over = true;
    clearTimeout(this.retryTimer);
    removeEventListener("online", this.onOnline);
    this.stopMedia(false);
    for (const track of this.stream.getTracks()) track.stop();
    if (this.signalling && this.signalling.ws) this.signalling.ws.close(1000);
    this.setState("ended", text, reason);
  }
}
