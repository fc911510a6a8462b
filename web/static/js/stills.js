// Camera stills (docs/protocol.md, Stills): what a phone on a thin link sends instead of
// video, and what its viewers show in place of the frozen picture.
//
// The sender grabs the camera into a canvas at least 640x480 (more when the camera is
// wider: the short side is at least 480, the long one at least 640), encodes a JPEG at
// the best quality that fits what the link carried lately, and sends it over the
// signalling socket as one binary frame. The next still waits for the server's
// `still.relayed` of this one (or ACK_TIMEOUT_MS), so stills never pile up in a thin
// link's queue, and for the `next_in_s` that acknowledgement gives, so the server never
// refuses one as too soon; otherwise one is taken EVERY_MS after the last was, to the
// millisecond. The time from sending to that acknowledgement measures what the link
// carries (`kbps`), which adapt.js reads to know when video may come back. Nothing is
// stored: each still lives in memory until the next one replaces it.

/** A still this often. The target is one at least every 2 s on the viewer's screen;
 * over a lossy link one still now and then takes a TCP retransmission or two longer
 * than the one before it (stills 0.6 to 1.1 s late were seen at 300 kbit/s with 10%
 * lost), and that lateness adds to the interval the viewer sees. */
export const EVERY_MS = 800;
/** A still not acknowledged by then is taken as lost: the next one goes. */
const ACK_TIMEOUT_MS = 4000;
/** What the server asks between stills when its acknowledgement does not say (its
 * default VIDEOASSIST_STILL_MIN_INTERVAL_S). */
const SERVER_INTERVAL_MS = 500;
export const MIN_WIDTH = 640;
export const MIN_HEIGHT = 480;
/** The server's default VIDEOASSIST_STILL_MAX_BYTES, header included. */
const MAX_BYTES = 256 * 1024 - 1024;
/** JPEG qualities tried, best first, until one fits the budget. */
const QUALITIES = [0.8, 0.65, 0.5, 0.35];
/** What one still may take of the link, in seconds of what it carried lately: most of
 * the interval (EVERY_MS), the rest left to the audio. */
const BUDGET_S = 0.5;
/** The least budget, whatever the link measured: a still must stay readable. */
const MIN_BUDGET = 24 * 1024;

/**
 * The size a still of a camera picture `width` x `height` is drawn at: at least
 * MIN_WIDTH x MIN_HEIGHT (turned with the picture when it is upright), the camera's
 * shape kept.
 * @param {number} width @param {number} height
 * @returns {{width: number, height: number}}
 */
export function stillSize(width, height) {
  const [long, short] = width >= height ? [MIN_WIDTH, MIN_HEIGHT] : [MIN_HEIGHT, MIN_WIDTH];
  const scale = Math.max(long / width, short / height);
  return { width: Math.round(width * scale), height: Math.round(height * scale) };
}

/**
 * One binary frame: the header's length (2 bytes, big-endian), the header, the JPEG.
 * @param {object} header @param {ArrayBuffer} jpeg
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function packStill(header, jpeg) {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const frame = new Uint8Array(2 + head.length + jpeg.byteLength);
  new DataView(frame.buffer).setUint16(0, head.length);
  frame.set(head, 2);
  frame.set(new Uint8Array(jpeg), 2 + head.length);
  return frame;
}

/**
 * A binary frame from the server, read: its header and its JPEG. Two kinds come so:
 * another participant's still, and the call's frozen picture (docs/protocol.md,
 * Freeze), which is laid out the same.
 * @param {ArrayBuffer} data
 * @returns {{header: {type: "still" | "frozen"} & Record<string, number>, jpeg: Blob}
 *   | null} null when it is neither
 */
export function unpackFrame(data) {
  if (data.byteLength < 2) return null;
  const length = new DataView(data).getUint16(0);
  try {
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 2, length)));
    if (!header || (header.type !== "still" && header.type !== "frozen")) return null;
    return { header, jpeg: new Blob([data.slice(2 + length)], { type: "image/jpeg" }) };
  } catch {
    return null;
  }
}

/**
 * Sends stills of the camera while started.
 */
export class StillSender {
  /**
   * @param {{camera: () => MediaStreamTrack | null,
   *   send: (frame: Uint8Array<ArrayBuffer>) => boolean}} options
   *   `camera`: the camera track now; `send`: put a frame on the signalling socket
   *   (false: it is not open)
   */
  constructor({ camera, send }) {
    this.camera = camera;
    this.send = send;
    this.seq = 0;
    /** @type {{seq: number, bytes: number, at: number} | null} the still awaiting its ack */
    this.pending = null;
    /** @type {number | null} kbit/s the last acknowledged still was carried at */
    this.kbps = null;
    this.started = false;
    this.timer = 0;
    this.busy = false;
    this.video = document.createElement("video");
    this.video.muted = true;
    this.video.playsInline = true;
    this.canvas = document.createElement("canvas");
    /** performance.now() when the last still was taken (0: none since started) */
    this.taken = 0;
    /** performance.now() before which the server would refuse the next still */
    this.notBefore = 0;
    this.sent = 0;  // stills sent since started
  }

  get running() {
    return this.started;
  }

  start() {
    if (this.started) return;
    this.started = true;
    this.taken = 0;
    this.notBefore = 0;
    this.tick();
  }

  stop() {
    this.started = false;
    clearTimeout(this.timer);
    this.timer = 0;
    this.pending = null;
    this.video.srcObject = null;
  }

  /**
   * The server relayed a still (still.relayed): the next may go, `nextInS` after this.
   * @param {number} seq
   * @param {number} [nextInS] the server's interval between stills
   */
  acknowledged(seq, nextInS) {
    const pending = this.pending;
    if (!pending || pending.seq !== seq) return;
    this.pending = null;
    const now = performance.now();
    const seconds = Math.max(0.02, (now - pending.at) / 1000);
    this.kbps = Math.round(pending.bytes * 8 / seconds / 1000);
    console.debug("videoassist still", JSON.stringify({
      seq, bytes: pending.bytes, ms: Math.round(now - pending.at), kbps: this.kbps }));
    // The server's interval runs from when it took the still, before this reached us.
    this.notBefore = now + (typeof nextInS === "number" ? nextInS * 1000 : SERVER_INTERVAL_MS);
    this.tick();
  }

  /** An error about a still (its seq), or none came: let the next one go. @param {number} seq */
  refused(seq) {
    if (this.pending && this.pending.seq === seq) {
      console.debug("videoassist still", JSON.stringify({ seq, refused: true }));
      this.pending = null;
      this.tick();
    }
  }

  /** Come back to tick() in `ms`. @param {number} ms */
  later(ms) {
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.tick(), Math.max(0, ms));
  }

  async tick() {
    if (!this.started || this.busy) return;
    const now = performance.now();
    if (this.pending) {
      const waited = now - this.pending.at;
      if (waited < ACK_TIMEOUT_MS) return this.later(ACK_TIMEOUT_MS - waited);
      console.debug("videoassist still", JSON.stringify({
        seq: this.pending.seq, bytes: this.pending.bytes, ms: Math.round(waited), kbps: null }));
      this.pending = null;
      this.kbps = null;  // never acknowledged: the link says nothing good
    }
    const due = Math.max(this.taken ? this.taken + EVERY_MS : 0, this.notBefore);
    if (now < due) return this.later(due - now);
    this.busy = true;
    this.taken = now;
    try {
      await this.sendOne();
    } catch (error) {
      console.warn("no still could be taken", error);
    } finally {
      this.busy = false;
    }
    // Sent: its acknowledgement calls tick(); else (no camera yet, socket closed) the
    // next try comes at the usual time.
    if (this.started) this.later(this.pending ? ACK_TIMEOUT_MS : EVERY_MS);
  }

  async sendOne() {
    const track = this.camera();
    if (!track || track.readyState !== "live" || !track.enabled) return;
    const video = this.video;
    const current = /** @type {MediaStream | null} */ (video.srcObject);
    if (!current || current.getVideoTracks()[0] !== track) {
      video.srcObject = new MediaStream([track]);
      await video.play();
    }
    if (!video.videoWidth) return;
    const { width, height } = stillSize(video.videoWidth, video.videoHeight);
    this.canvas.width = width;
    this.canvas.height = height;
    const context = /** @type {CanvasRenderingContext2D} */ (this.canvas.getContext("2d"));
    context.drawImage(video, 0, 0, width, height);
    const budget = Math.min(MAX_BYTES, Math.max(MIN_BUDGET,
      this.kbps === null ? MAX_BYTES : this.kbps * 1000 / 8 * BUDGET_S));
    /** @type {Blob | null} */
    let jpeg = null;
    for (const quality of QUALITIES) {
      jpeg = await new Promise((resolve) => { this.canvas.toBlob(resolve, "image/jpeg", quality); });
      if (jpeg && jpeg.size <= budget) break;
    }
    if (!jpeg || jpeg.size > MAX_BYTES || !this.started) return;
    this.seq += 1;
    const frame = packStill({ type: "still", seq: this.seq, width, height },
      await jpeg.arrayBuffer());
    if (!this.send(frame)) return;
    this.pending = { seq: this.seq, bytes: frame.byteLength, at: performance.now() };
    this.sent += 1;
  }
}
