// The connection-quality indicator: round-trip time and packet loss of the media
// connection, read from getStats() every two seconds, in three words.

const EVERY_MS = 2000;

/**
 * @typedef {{level: "good" | "fair" | "poor" | "none", text: string}} Quality
 */

/**
 * Judge one getStats() report against the previous totals.
 * @param {RTCStatsReport} report
 * @param {{lost: number, received: number}} last totals seen before, updated here
 * @param {boolean} connected whether the connection is up (before any measurement)
 * @returns {Quality}
 */
export function judge(report, last, connected) {
  let rtt = null;
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
  if (pair && typeof pair.currentRoundTripTime === "number") rtt = pair.currentRoundTripTime;
  // Without a measured pair (not every browser fills it in), what the server reports
  // back about the media this client sends (RTCP receiver reports) carries one too.
  if (rtt === null) rtt = reported;
  const newLost = lost - last.lost;
  const newReceived = received - last.received;
  last.lost = lost;
  last.received = received;
  const loss = newLost + newReceived > 0 ? newLost / (newLost + newReceived) : 0;
  if (rtt === null) return { level: "none", text: connected ? "Connected" : "Connecting" };
  const ms = Math.round(rtt * 1000);
  const percent = Math.round(loss * 100);
  if (rtt < 0.3 && loss < 0.02) return { level: "good", text: `Good connection (${ms} ms)` };
  if (rtt < 0.7 && loss < 0.08) {
    return { level: "fair", text: `Fair connection (${ms} ms, ${percent}% lost)` };
  }
  return { level: "poor", text: `Poor connection (${ms} ms, ${percent}% lost)` };
}

/**
 * Keep `element` showing the quality of whatever connection `pc()` returns.
 * @param {HTMLElement} element
 * @param {() => RTCPeerConnection | null} pc
 * @returns {() => void} stops watching
 */
export function watchQuality(element, pc) {
  const last = { lost: 0, received: 0 };
  /** @type {RTCPeerConnection | null} */
  let seen = null;
  const show = (/** @type {Quality} */ q) => {
    element.dataset.level = q.level;
    element.textContent = q.text;
  };
  const timer = setInterval(async () => {
    const current = pc();
    if (!current) return show({ level: "none", text: "No video connection" });
    if (current !== seen) {
      seen = current;
      last.lost = 0;
      last.received = 0;
    }
    try {
      show(judge(await current.getStats(), last, current.connectionState === "connected"));
    } catch {
      show({ level: "none", text: "No video connection" });
    }
  }, EVERY_MS);
  show({ level: "none", text: "Connecting" });
  return () => clearInterval(timer);
}
