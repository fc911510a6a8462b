// The quality indicator: what the viewer gets from the call, in words, checked every
// second. Two things are measured, both from the browser itself:
//
// - the media connection: its state, and round-trip time and packet loss from
//   getStats() (loss over the last two seconds);
// - the remote picture shown: when it last changed. A frame counts when the <video>
//   presented it (requestVideoFrameCallback, in Chromium and Safari) or when the
//   decoder decoded one for its track (getStats() framesDecoded: where
//   requestVideoFrameCallback is missing, and while the element does not paint: a
//   hidden tab, the expert's own Freeze). No new frame for FROZEN_AFTER_MS while the
//   connection says it is up is "Video frozen": a stalled server or a lost keyframe
//   leaves the last frame on screen, whatever the round trip says.
//
// Customers and technicians (the field layout) get plain words; staff at a desk (the
// expert layout) get the round trip and loss too. The numbers are in the tooltip for
// everyone.

import { t } from "./i18n.js";

export const FROZEN_AFTER_MS = 2000;
const EVERY_MS = 1000;
/** Loss is judged over this many ticks. */
const LOSS_TICKS = 2;

/**
 * @typedef {"good" | "fair" | "poor" | "frozen" | "none"} Level
 * @typedef {{level: Level, text: string, detail: string}} Quality
 * @typedef {{rtt: number | null, lost: number, received: number}} Link
 *   what one getStats() report says of the connection (loss: running totals)
 * @typedef {"live" | "frozen" | "waiting" | "off" | "stills" | "none"} Picture
 *   the remote picture shown: moving; stuck on a frame; no frame yet; its sender's
 *   camera is off on purpose; its sender sends stills, not video (adapt.js); no remote
 *   picture is shown
 */

/**
 * Round-trip time and running packet totals from one getStats() report.
 * @param {RTCStatsReport} report
 * @returns {Link}
 */
export function linkOf(report) {
  let reported = null;
  let lost = 0;
  let received = 0;
  /** @type {string | null} */
  let selected = null;
  report.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) selected = r.selectedCandidatePairId;
    if (r.type === "inbound-rtp") {
      lost += Math.max(0, r.packetsLost || 0);
      received += r.packetsReceived || 0;
    }
    if (r.type === "remote-inbound-rtp" && typeof r.roundTripTime === "number") {
      reported = r.roundTripTime;
    }
  });
  const pair = selected ? report.get(selected) : null;
  // Without a measured pair (not every browser fills it in), what the server reports
  // back about the media this client sends (RTCP receiver reports) carries one too.
  const rtt = pair && typeof pair.currentRoundTripTime === "number"
    ? pair.currentRoundTripTime : reported;
  return { rtt, lost, received };
}

/**
 * Frames decoded so far for one received track, from a getStats() report.
 * @param {RTCStatsReport} report
 * @param {string} trackId
 * @returns {number | null} null when the report has no such track
 */
export function framesDecodedOf(report, trackId) {
  /** @type {number | null} */
  let frames = null;
  report.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video" && r.trackIdentifier === trackId) {
      frames = (frames || 0) + (r.framesDecoded || 0);
    }
  });
  return frames;
}

/**
 * The words for what the viewer gets.
 * @param {{connection: "connecting" | "connected" | "reconnecting", rtt: number | null,
 *   loss: number, picture: Picture, stuckMs: number, staff: boolean}} state
 *   `loss`: the share of packets lost lately; `stuckMs`: how long the picture has not
 *   changed; `staff`: say the numbers on the badge, not only in its tooltip
 * @returns {Quality}
 */
export function describe({ connection, rtt, loss, picture, stuckMs, staff }) {
  const ms = rtt === null ? null : Math.round(rtt * 1000);
  const percent = Math.round(loss * 100);
  const numbers = ms === null ? ""
    : t("{ms} ms round trip, {percent}% lost", { ms, percent });
  // The call is joined (its status line says so) while the media connection, its own,
  // is still being made: say what is coming, not "Connecting…" beside "Connected".
  if (connection === "connecting") {
    return { level: "none", text: t("Starting video…"),
      detail: t("The call is connected; its video is starting.") };
  }
  if (connection === "reconnecting") {
    return { level: "none", text: t("Reconnecting…"), detail: t("The connection was lost.") };
  }
  if (picture === "frozen") {
    const seconds = Math.floor(stuckMs / 1000);
    const still = t("No new picture for {seconds} s.", { seconds });
    return { level: "frozen",
      text: staff ? t("Video frozen ({seconds} s)", { seconds }) : t("Video frozen"),
      detail: numbers ? `${still} ${numbers}.` : still };
  }
  /** @type {Level} */
  let level = "none";
  if (ms !== null && rtt !== null) {
    level = rtt < 0.3 && loss < 0.02 ? "good" : rtt < 0.7 && loss < 0.08 ? "fair" : "poor";
  }
  const words = { good: t("Good connection"), fair: t("Weak connection"),
    poor: t("Weak connection"), frozen: "", none: t("Connected") }[level];
  const staffWords = { good: t("Good connection ({ms} ms)", { ms: String(ms) }),
    fair: t("Fair connection ({ms} ms, {percent}% lost)", { ms: String(ms), percent }),
    poor: t("Poor connection ({ms} ms, {percent}% lost)", { ms: String(ms), percent }),
    frozen: "", none: t("Connected") }[level];
  const text = staff ? staffWords : words;
  if (picture === "off") return { level, text: t("Camera off · {text}", { text }), detail: numbers };
  if (picture === "stills") {
    return { level, text: t("Still pictures · {text}", { text }), detail: numbers };
  }
  if (picture === "waiting") {
    return { level, text: t("Waiting for video · {text}", { text }), detail: numbers };
  }
  return { level, text, detail: numbers };
}

/**
 * When the picture of one <video> last changed, by requestVideoFrameCallback where the
 * browser has it.
 */
class FrameClock {
  /** @param {HTMLVideoElement} video */
  constructor(video) {
    this.video = video;
    /** @type {MediaStreamTrack | null} the track the times below are of */
    this.track = null;
    /** when the track was first seen, and its last frame (performance.now()), if any */
    this.since = 0;
    /** @type {number | null} */
    this.lastFrame = null;
    /** @type {number | null} framesDecoded last read, for the fallback */
    this.decoded = null;
    this.stopped = false;
    this.presents = "requestVideoFrameCallback" in video;
    if (this.presents) this.request();
  }

  request() {
    this.video.requestVideoFrameCallback(() => {
      if (this.stopped) return;
      this.frame(this.current());
      this.request();
    });
  }

  /** @returns {MediaStreamTrack | null} the video track the element shows */
  current() {
    const stream = /** @type {MediaStream | null} */ (this.video.srcObject);
    return stream ? stream.getVideoTracks()[0] || null : null;
  }

  /** A new frame of `track` now. @param {MediaStreamTrack | null} track */
  frame(track) {
    this.follow(track);
    if (track) this.lastFrame = performance.now();
  }

  /** Start over when the element shows another track. @param {MediaStreamTrack | null} track */
  follow(track) {
    if (track === this.track) return;
    this.track = track;
    this.since = performance.now();
    this.lastFrame = null;
    this.decoded = null;
  }

  /** The decoder's count for the track shown, from getStats(). @param {number | null} frames */
  decodedNow(frames) {
    if (frames === null) return;
    if (this.decoded !== null && frames > this.decoded) this.lastFrame = performance.now();
    this.decoded = frames;
  }

  stop() {
    this.stopped = true;
  }
}

/**
 * Keep `element` showing what the viewer gets.
 * @param {HTMLElement} element
 * @param {{pc: () => RTCPeerConnection | null, video: HTMLVideoElement,
 *   expected: () => "video" | "stills" | "off" | "none", reconnecting: () => boolean,
 *   staff: boolean, onPicture?: (picture: Picture, stuckMs: number) => void}} options
 *   `pc`: the media connection now; `video`: the remote picture shown; `expected`:
 *   whether that picture's sender sends video, sends stills in its place, has their
 *   camera off on purpose, or nobody's picture is meant to be there; `reconnecting`: the call is coming back
 *   after a loss; `onPicture`: told the picture's state at each check
 * @returns {() => void} stops watching
 */
export function watchQuality(element, { pc, video, expected, reconnecting, staff, onPicture }) {
  const frames = new FrameClock(video);
  /** @type {{lost: number, received: number}[]} the totals of the last ticks */
  let totals = [];
  /** @type {RTCPeerConnection | null} */
  let seen = null;
  let wasConnected = false;
  const show = (/** @type {Quality} */ q, /** @type {Picture} */ picture) => {
    element.dataset.level = q.level;
    element.dataset.picture = picture;
    element.textContent = q.text;
    element.title = q.detail;
  };
  const tick = async () => {
    const current = pc();
    if (current !== seen) {
      seen = current;
      totals = [];
    }
    const track = frames.current();
    frames.follow(track);
    let link = { rtt: /** @type {number | null} */ (null), lost: 0, received: 0 };
    const up = current !== null && current.connectionState === "connected";
    if (current && up) {
      try {
        const report = await current.getStats();
        link = linkOf(report);
        if (track) frames.decodedNow(framesDecodedOf(report, track.id));
      } catch {
        // A connection closed meanwhile: the next tick sees the new one.
      }
    }
    if (current !== pc()) return;  // replaced while getStats() ran
    if (!up) totals = [];
    totals.push({ lost: link.lost, received: link.received });
    if (totals.length > LOSS_TICKS + 1) totals.shift();
    const first = totals[0];
    const lost = link.lost - first.lost;
    const received = link.received - first.received;
    const loss = lost + received > 0 ? lost / (lost + received) : 0;
    if (up) wasConnected = true;
    const connection = up ? "connected"
      : reconnecting() || wasConnected ? "reconnecting" : "connecting";
    const now = performance.now();
    const stuckMs = now - (frames.lastFrame ?? frames.since);
    const wanted = expected();
    /** @type {Picture} */
    let picture = "none";
    if (wanted === "off") picture = "off";
    else if (wanted === "stills" && up) picture = "stills";
    else if (wanted === "video" && track && up) {
      picture = stuckMs < FROZEN_AFTER_MS ? "live"
        : frames.lastFrame === null ? "waiting" : "frozen";
    }
    show(describe({ connection, rtt: link.rtt, loss, picture, stuckMs, staff }), picture);
    if (onPicture) onPicture(picture, stuckMs);
  };
  let running = false;
  const timer = setInterval(() => {
    if (running) return;  // a getStats() slower than a tick: skip, do not pile up
    running = true;
    tick().finally(() => { running = false; });
  }, EVERY_MS);
  show(describe({ connection: "connecting", rtt: null, loss: 0, picture: "none", stuckMs: 0,
    staff }), "none");
  return () => {
    clearInterval(timer);
    frames.stop();
  };
}
