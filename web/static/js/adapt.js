// Degrade, do not drop (docs/protocol.md, Degrading): the publisher's media mode,
// chosen from what its own connection says about the link, once a second.
//
// - "video": the camera as the browser's encoder sends it (it already follows the
//   viewers' bandwidth estimates, which the server relays as REMB).
// - "reduced": the camera at half its size and at most REDUCED_KBPS, audio first.
// - "stills" (phones only: customers and technicians by link): no video at all; a sharp
//   JPEG of the camera at least every 2 s over the signalling socket (stills.js), and
//   the audio.
//
// The link is judged from getStats(): the browser's estimate of what it may send
// (`availableOutgoingBitrate` of the selected candidate pair) and the share of packets
// lost on the way to the server (what the server's receiver reports say:
// `remote-inbound-rtp`), over the last LOSS_TICKS seconds. A worse mode is taken once
// its cause has held DOWN_TICKS seconds in a row; a better one once the link has been
// good, with a margin, for UP_TICKS. While stills are sent no video is, so the browser's
// estimate says nothing of the link: the stills' own delivery (bytes over the time to
// their acknowledgement) measures it instead. Reduced video is capped, and the estimate
// follows what is sent: from there, full video is tried on loss alone. Going back up
// is a try: if the better mode falls back within PROBE_TICKS, the next try waits twice
// as long (up to MAX_BACKOFF), so a link at the edge does not flap. A new connection
// is judged by loss only for its first GRACE_TICKS seconds, while the estimate grows.
//
// After a step up the estimate is the lower mode's: held down by its cap, or stale
// from before the stills (no video was sent to move it). It grows from there by some
// 8% a second (libwebrtc's increase without loss: the server's REMB is the only
// feedback aiortc negotiates, so the browser cannot probe), and on a busy machine
// slower still. So a low estimate counts against the mode only once it
// has reached the mode's limit since the step up and fallen back under it; until then,
// loss alone says the link cannot carry the mode.

/** @typedef {"video" | "reduced" | "stills"} Mode */
/** @typedef {"link_ok" | "low_bandwidth" | "packet_loss"} Reason */
/**
 * @typedef {{kbps: number | null, loss: number | null}} Sample
 *   what one look at the link found: the estimate in kbit/s (null: none yet) and the
 *   share of packets lost lately (null: nothing sent lately)
 */

/** Below the server's floor for the estimates it relays (150 kbit/s): only the
 * browser's own loss-based estimate goes there. */
export const STILLS_BELOW_KBPS = 150;
export const STILLS_LOSS = 0.08;
/** The browser's estimate starts at about 300 kbit/s and grows from there. */
export const REDUCED_BELOW_KBPS = 300;
export const REDUCED_LOSS = 0.03;
/** What the reduced mode sends at most, and how much smaller its picture is. The
 * server's estimate of a stream grows to 1.5 times what it carries: at this cap it
 * can pass the limit back up (REDUCED_BELOW_KBPS x MARGIN). */
export const REDUCED_KBPS = 300;
const REDUCED_SCALE = 2;
/** Back up only with this margin over the limit that brought the mode down. */
const MARGIN = 1.3;
export const DOWN_TICKS = 3;
export const UP_TICKS = 5;
const PROBE_TICKS = 8;
const MAX_BACKOFF = 8;
const LOSS_TICKS = 3;
/** A new connection's estimate is still growing: judged by loss only, that long. */
const GRACE_TICKS = 8;
const EVERY_MS = 1000;
const RANK = { video: 0, reduced: 1, stills: 2 };

/**
 * The mode the link calls for now, and why, without hysteresis.
 * @param {Sample} sample
 * @param {{margin?: number, stills?: boolean}} [options] `margin`: the limits raised
 *   (to go back up); `stills`: whether this publisher may send stills
 * @returns {{mode: Mode, reason: Reason}}
 */
export function wanted({ kbps, loss }, { margin = 1, stills = true } = {}) {
  const lost = loss ?? 0;
  /** @type {{mode: Mode, reason: Reason}} */
  let verdict = { mode: "video", reason: "link_ok" };
  if (lost >= REDUCED_LOSS / margin) verdict = { mode: "reduced", reason: "packet_loss" };
  else if (kbps !== null && kbps < REDUCED_BELOW_KBPS * margin) {
    verdict = { mode: "reduced", reason: "low_bandwidth" };
  }
  if (!stills) return verdict;
  if (lost >= STILLS_LOSS / margin) return { mode: "stills", reason: "packet_loss" };
  if (kbps !== null && kbps < STILLS_BELOW_KBPS * margin) {
    return { mode: "stills", reason: "low_bandwidth" };
  }
  return verdict;
}

/**
 * The mode with hysteresis: fed one Sample a tick, says when to change.
 */
export class ModeChooser {
  /** @param {{stills?: boolean}} [options] whether this publisher may send stills */
  constructor({ stills = true } = {}) {
    this.stills = stills;
    /** @type {Mode} */
    this.mode = "video";
    /** @type {Reason} */
    this.reason = "link_ok";
    /** Ticks the worse (or better) mode has been called for in a row. */
    this.worse = 0;
    this.better = 0;
    /** Ticks since the last change up (a try), and how much longer the next waits. */
    this.sinceUp = Infinity;
    this.backoff = 1;
    /** Whether the estimate speaks for this mode: false after a step up, until it
     * reaches the mode's limit (see the top of this module). */
    this.grown = true;
  }

  /** The estimate under which this mode is too much for the link, kbit/s. */
  limit() {
    return this.mode === "video" ? REDUCED_BELOW_KBPS : STILLS_BELOW_KBPS;
  }

  /**
   * @param {Sample} sample
   * @returns {{mode: Mode, reason: Reason} | null} the new mode, or null: no change
   */
  feed(sample) {
    this.sinceUp += 1;
    // Right after a step up the estimate is still growing from where the lower mode
    // held it: during the try, loss alone says the link cannot carry the better mode.
    const trying = this.sinceUp <= PROBE_TICKS;
    if (sample.kbps !== null && sample.kbps >= this.limit()) this.grown = true;
    const now = wanted(trying || !this.grown ? { kbps: null, loss: sample.loss } : sample,
      { stills: this.stills });
    if (RANK[now.mode] > RANK[this.mode]) {
      this.better = 0;
      this.worse += 1;
      if (this.worse < DOWN_TICKS) return null;
      // A try up that fell back soon: the next one waits longer.
      this.backoff = this.sinceUp <= PROBE_TICKS ? Math.min(this.backoff * 2, MAX_BACKOFF) : 1;
      return this.set(now.mode, now.reason);
    }
    this.worse = 0;
    // Reduced video is capped, and the browser's estimate follows what is sent (the
    // server's grows to 1.5 times what it carries): it cannot say the link got better.
    // Up from there is a try on loss alone, undone within DOWN_TICKS if it was wrong.
    const measure = this.mode === "reduced" ? { kbps: null, loss: sample.loss } : sample;
    const up = wanted(measure, { margin: MARGIN, stills: this.stills });
    if (RANK[up.mode] < RANK[this.mode]) {
      this.better += 1;
      if (this.better < UP_TICKS * this.backoff) return null;
      this.sinceUp = 0;
      // One step at a time: from stills, reduced video first.
      const mode = this.mode === "stills" ? "reduced" : up.mode;
      return this.set(mode, mode === "video" ? "link_ok" : this.reason);
    }
    this.better = 0;
    if (now.mode === this.mode && now.reason !== this.reason && this.mode !== "video") {
      return this.set(now.mode, now.reason);  // the same mode, for another reason now
    }
    return null;
  }

  /** @param {Mode} mode @param {Reason} reason */
  set(mode, reason) {
    // Down, the estimate is the link's now; up, it is the lower mode's until it grows.
    if (RANK[mode] !== RANK[this.mode]) this.grown = RANK[mode] > RANK[this.mode];
    this.mode = mode;
    this.reason = reason;
    this.worse = 0;
    this.better = 0;
    return { mode, reason };
  }
}

/**
 * The link as one getStats() report of the publisher's connection says: the send
 * estimate, and the running totals of packets sent and reported lost.
 * @param {RTCStatsReport} report
 * @returns {{kbps: number | null, sent: number, lost: number}}
 */
export function linkOut(report) {
  /** @type {number | null} */
  let kbps = null;
  let sent = 0;
  let lost = 0;
  /** @type {string | null} */
  let selected = null;
  report.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) selected = r.selectedCandidatePairId;
    if (r.type === "outbound-rtp") sent += r.packetsSent || 0;
    if (r.type === "remote-inbound-rtp") lost += Math.max(0, r.packetsLost || 0);
  });
  report.forEach((r) => {
    const chosen = selected ? r.id === selected : r.nominated && r.state === "succeeded";
    if (r.type === "candidate-pair" && chosen && typeof r.availableOutgoingBitrate === "number") {
      kbps = Math.round(r.availableOutgoingBitrate / 1000);
    }
  });
  return { kbps, sent, lost };
}

/**
 * Apply a mode to the publisher's senders: the camera's encoding on, reduced or off;
 * the microphone first whatever the mode.
 * @param {RTCPeerConnection} pc
 * @param {Mode} mode
 */
export async function applyMode(pc, mode) {
  for (const sender of pc.getSenders()) {
    if (!sender.track) continue;
    const parameters = sender.getParameters();
    if (!parameters.encodings || !parameters.encodings.length) continue;
    const encoding = parameters.encodings[0];
    if (sender.track.kind === "audio") {
      encoding.priority = "high";
      encoding.networkPriority = "high";
    } else {
      encoding.active = mode !== "stills";
      if (mode === "reduced") {
        encoding.maxBitrate = REDUCED_KBPS * 1000;
        encoding.scaleResolutionDownBy = REDUCED_SCALE;
      } else {
        delete encoding.maxBitrate;
        encoding.scaleResolutionDownBy = 1;
      }
    }
    try {
      await sender.setParameters(parameters);
    } catch (error) {
      console.warn("the sender's parameters could not be set", error);
    }
  }
}

/**
 * Watch a publisher's link and keep its mode; events: "mode" (detail: {mode, reason,
 * kbps, loss}) at each change.
 */
export class Adaptation extends EventTarget {
  /**
   * @param {{pc: () => RTCPeerConnection | null, stills: boolean,
   *   stillKbps: () => number | null}} options
   *   `pc`: the media connection now; `stills`: this publisher may go to stills;
   *   `stillKbps`: what the stills' delivery measured lately, if anything
   */
  constructor({ pc, stills, stillKbps }) {
    super();
    this.pc = pc;
    this.stillKbps = stillKbps;
    this.chooser = new ModeChooser({ stills });
    /** @type {{sent: number, lost: number}[]} the totals of the last ticks */
    this.totals = [];
    /** @type {RTCPeerConnection | null} */
    this.seen = null;
    /** Ticks the connection seen has been connected. */
    this.connectedTicks = 0;
    /** @type {Sample} */
    this.last = { kbps: null, loss: null };
    this.running = false;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = true;
      this.tick().finally(() => { this.running = false; });
    }, EVERY_MS);
  }

  /** @returns {Mode} */
  get mode() {
    return this.chooser.mode;
  }

  async tick() {
    const pc = this.pc();
    if (pc !== this.seen) {
      this.seen = pc;
      this.totals = [];
      this.connectedTicks = 0;
      // A new connection starts as the mode says (its senders are new).
      if (pc) await applyMode(pc, this.chooser.mode);
    }
    if (!pc || pc.connectionState !== "connected") return;
    this.connectedTicks += 1;
    let link;
    try {
      link = linkOut(await pc.getStats());
    } catch {
      return;  // closed meanwhile: the next tick sees the new one
    }
    this.totals.push({ sent: link.sent, lost: link.lost });
    if (this.totals.length > LOSS_TICKS + 1) this.totals.shift();
    const first = this.totals[0];
    const sent = link.sent - first.sent;
    const lost = link.lost - first.lost;
    const loss = sent > 0 ? Math.min(1, lost / sent) : null;
    // Sending no video, the browser's estimate is stale: the stills measure the link.
    const kbps = this.chooser.mode === "stills" ? this.stillKbps() ?? link.kbps : link.kbps;
    this.last = { kbps, loss };
    // What is said is what was measured; while the estimate grows, it decides nothing.
    const judged = this.connectedTicks > GRACE_TICKS || this.chooser.mode === "stills"
      ? kbps : null;
    // Each look at the link, at the console's verbose level: why a mode held or changed
    // (tests/browser/test_stills.py shows these when the phone did not come back).
    console.debug("videoassist link", JSON.stringify({
      mode: this.chooser.mode, kbps, judged, estimate: link.kbps, loss, sent, lost,
      better: this.chooser.better, worse: this.chooser.worse, backoff: this.chooser.backoff,
    }));
    this.decide({ kbps: judged, loss }, this.last);
  }

  /**
   * @param {Sample} judged what the choice is made on
   * @param {Sample} sample what is told with it
   */
  decide(judged, sample) {
    const change = this.chooser.feed(judged);
    if (!change) return;
    const pc = this.pc();
    if (pc) applyMode(pc, change.mode);
    this.dispatchEvent(new CustomEvent("mode", { detail: {
      ...change, kbps: sample.kbps, loss: sample.loss === null ? null : Math.round(sample.loss * 1000) / 1000,
    } }));
  }

  stop() {
    clearInterval(this.timer);
  }
}
