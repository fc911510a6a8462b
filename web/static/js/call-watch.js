// The watchdogs of a call's connections, looked at every WATCH_MS.
//
// The socket: a ping after 4 s without a message, and no answer within 25 s more,
// gives it up as lost (a browser keeps a socket whose network went away "open" until
// TCP gives up, minutes later; the server already let it go).
//
// The media connection: one that failed, stays disconnected, never connects, receives
// nothing any more, or whose restart is not answered is to be replaced by a new one
// (docs/protocol.md, Coming back).

/** How often the connections are looked at. */
export const WATCH_MS = 1000;
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

/**
 * Whether a socket in the call answers no ping: lost.
 * @param {import("./signalling.js").Signalling} signalling
 */
export function socketLost(signalling) {
  return signalling.dead(PING_AFTER_MS, PONG_WITHIN_MS);
}

/** The watch of one media connection, from when it starts. */
export class MediaWatch {
  /** @param {import("./media.js").MediaLink} media */
  constructor(media) {
    this.media = media;
    /** When it was last seen connected (or started). */
    this.since = Date.now();
    /** @type {number | null} the bytes it had received at the last look */
    this.bytes = null;
    /** When those last changed. */
    this.changed = Date.now();
    /** Whether a look is under way (reading the statistics takes a while). */
    this.busy = false;
  }

  /**
   * Look at the media connection.
   * @param {boolean} ready whether the socket is in the call
   * @param {MediaStream} stream what this client sends
   * @returns {Promise<"replace" | "drop" | null>} replace it by a new one on the open
   *   socket; let go of a failed one while the socket is down (the next join starts
   *   anew); or keep it
   */
  async check(ready, stream) {
    if (this.busy) return null;
    const now = Date.now();
    const state = this.media.pc.connectionState;
    if (state === "failed" || state === "closed") return ready ? "replace" : "drop";
    if (!ready) return null;
    if (state !== "connected") {
      this.bytes = null;
      const limit = state === "disconnected" ? DISCONNECTED_MS : CONNECT_MS;
      return now - this.since > limit ? "replace" : null;
    }
    this.since = now;
    if (!stream.getTracks().some((track) => track.readyState === "live")) return null;
    this.busy = true;
    try {
      const bytes = await this.media.bytesReceived();
      if (bytes === null || bytes !== this.bytes) {
        this.bytes = bytes;
        this.changed = now;
        return null;
      }
      return now - this.changed > SILENT_MS ? "replace" : null;
    } finally {
      this.busy = false;
    }
  }
}
