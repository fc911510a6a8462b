// Signalling protocol v1 over /ws (docs/protocol.md).
import { unpackFrame } from "./stills.js";

// The server's messages this client reads, as docs/protocol.md shows them.
/**
 * @typedef {{id: number, call_id: number, role: string, name: string, joined_at: number,
 *   left_at: number | null, away_since?: number, away_until?: number}} Participant
 *   `away_*`: from participant.away, while its connection is lost
 * @typedef {{id: number, call_id: number, participant_id: number,
 *   from: {name: string, role: string}, text: string, created_at: number}} ChatLine
 * @typedef {{type: "chat.message", message: ChatLine, client_id?: string,
 *   replayed?: boolean}} ChatMessage `replayed`: from `joined`'s chat (the client's own mark)
 * @typedef {{type: "joined", protocol: number, job: {id: number, title: string},
 *   call: {id: number, started_at: number}, you: Participant, participants: Participant[],
 *   resumed?: boolean, annotations?: {from: number, target: number,
 *   shape: import("./shapes.js").Shape}[], chat?: ChatLine[],
 *   ice_servers: RTCIceServer[], ice_transport_policy: RTCIceTransportPolicy}} Joined
 * @typedef {{type: "media.tracks", participant: number,
 *   tracks: {id: string, kind: "audio" | "video", muted: boolean}[]}} MediaTracks
 * @typedef {{type: "camera.state", facing: string | null, torch: boolean | null,
 *   zoom: number | null, can: string[]}} CameraState
 *   as a client sends it; the server adds `from` when it relays one
 * @typedef {{type: "camera.control", from: number, action: "switch" | "torch" | "zoom",
 *   value: string | boolean | number | null}} CameraControl
 * @typedef {{type: "annotation.add", from: number, target: number,
 *   shape: import("./shapes.js").Shape}
 *   | {type: "annotation.remove", from: number, target: number, id: string}
 *   | {type: "annotation.clear", from: number, target: number}
 *   | {type: "annotation.pointer", from: number, target: number, x: number, y: number,
 *     color: string}} Annotation
 * @typedef {{type: "snapshot.saved", request?: string, snapshot: {id: number,
 *   version: number, camera: number, author: number, captured_at: number,
 *   width: number, height: number, shapes: number, sha256: string}}} SnapshotSaved
 * @typedef {{id: number, user: number | null, author: string, text: string,
 *   created_at: number}} Note
 * @typedef {{type: "error", code: string, message: string, ref?: string,
 *   seq?: number}} ErrorMessage
 * @typedef {{type: "media.mode", participant: number, mode: "video" | "reduced" | "stills",
 *   reason: "link_ok" | "low_bandwidth" | "packet_loss", kbps: number | null,
 *   loss: number | null, since: number}} MediaMode
 * @typedef {{type: "still", from: number, seq: number, width: number, height: number,
 *   at: number, jpeg: Blob}} Still
 *   a binary still frame, read (docs/protocol.md, Stills)
 * @typedef {{type: "frozen", camera: number, by: number, width: number, height: number,
 *   at: number, jpeg: Blob}} Frozen
 *   the call's frozen picture, a binary frame, read (docs/protocol.md, Freeze)
 * @typedef {{type: "freeze.ended", camera: number, by: number | null}} FreezeEnded
 */

/**
 * A signalling connection to one job's call.
 * Events: "joined", "participant.joined", "participant.left", "chat.message",
 * "annotation.*", "error", "closed" (detail: {code, reason}), "still" (detail: a Still,
 * from a binary frame), "frozen" (detail: a Frozen, from a binary frame), and every
 * other server message by its type.
 */
export class Signalling extends EventTarget {
  /**
   * @param {string} token  a participant or staff token
   * @param {number} [job]  the job id (staff only)
   * @param {{resume?: number | null, chatAfter?: number}} [back] coming back
   *   (docs/protocol.md, Coming back): the participant this client was, and the id of
   *   the newest chat message it has
   */
  constructor(token, job, back = {}) {
    super();
    this.token = token;
    this.job = job;
    this.resume = back.resume ?? null;
    this.chatAfter = back.chatAfter ?? 0;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** How many sdp.offers sent on this socket await their answer (or error): the
     * server answers each, in order. */
    this.offersAwaiting = 0;
    /** When the socket last received a message (Date.now()), or opened. */
    this.receivedAt = 0;
    /** When the last ping went out, or 0. */
    this.pingedAt = 0;
  }

  /** Whether a message sent now goes out (the socket is open). */
  get open() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  /** Open the socket and authenticate. */
  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.addEventListener("open", () => {
      this.receivedAt = Date.now();
      /** @type {{type: "auth", token: string, job?: number, resume?: number,
       *   chat_after?: number}} */
      const auth = { type: "auth", token: this.token };
      if (this.job !== undefined) auth.job = this.job;
      if (this.resume !== null) auth.resume = this.resume;
      if (this.chatAfter) auth.chat_after = this.chatAfter;
      ws.send(JSON.stringify(auth));
    });
    ws.addEventListener("message", (event) => {
      this.receivedAt = Date.now();
      if (event.data instanceof ArrayBuffer) {
        const frame = unpackFrame(event.data);
        if (frame) {
          this.dispatchEvent(new CustomEvent(frame.header.type,
            { detail: { ...frame.header, jpeg: frame.jpeg } }));
        }
        return;
      }
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "sdp.answer" || (message.type === "error" && message.ref === "sdp.offer")) {
        this.offersAwaiting = Math.max(0, this.offersAwaiting - 1);
      }
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    });
    ws.addEventListener("close", (event) => {
      this.dispatchEvent(new CustomEvent("closed", {
        detail: { code: event.code, reason: event.reason },
      }));
    });
  }

  /**
   * Send one message.
   * @param {object} message
   */
  send(message) {
    if (!this.open) return;
    /** @type {WebSocket} */ (this.ws).send(JSON.stringify(message));
    if (/** @type {{type?: string}} */ (message).type === "sdp.offer") this.offersAwaiting += 1;
  }

  /**
   * Send one binary frame (a still).
   * @param {Uint8Array<ArrayBuffer>} frame
   * @returns {boolean} whether it went on an open socket
   */
  sendBinary(frame) {
    if (!this.open) return false;
    /** @type {WebSocket} */ (this.ws).send(frame);
    return true;
  }

  /**
   * Whether the socket is dead: a ping went out PONG_WITHIN_MS ago or more and nothing
   * came since. Else, if nothing came for PING_AFTER_MS, a ping goes out now (the
   * server answers pong: docs/protocol.md, Liveness). Called every second or so; a
   * check delayed (a throttled background tab) only sends its ping later, since the
   * answer is waited for from the ping on.
   * @param {number} pingAfterMs
   * @param {number} pongWithinMs
   * @returns {boolean}
   */
  dead(pingAfterMs, pongWithinMs) {
    if (!this.open) return false;
    const now = Date.now();
    if (this.pingedAt > this.receivedAt) return now - this.pingedAt >= pongWithinMs;
    if (now - this.receivedAt >= pingAfterMs) {
      this.send({ type: "ping" });
      this.pingedAt = now;
    }
    return false;
  }

  /** Leave the call and close. */
  leave() {
    this.send({ type: "leave" });
    if (this.ws) this.ws.close(1000);
  }
}
