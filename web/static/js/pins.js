// Where the pinned shapes on one participant's picture are (docs/protocol.md, Pinned
// shapes): the server follows each on the video and says, for each picture it
// tracked, where it is then (annotation.track, tagged with that frame's RTP timestamp
// as this page receives the video). The overlay asks for the frame on screen
// (requestVideoFrameCallback's rtpTimestamp), so a drawing moves with the picture and
// not after it; for a picture with no RTP timestamp (this page's own camera, ahead of
// the server), the latest.

/**
 * @typedef {{id: string, state: "tracking" | "lost" | "off", matrix: number[] | null}} Place
 * @typedef {{type: "annotation.track", target: number, rtp_timestamp: number | null,
 *   shapes: Place[]}} Track
 */

// Tracked pictures kept: three seconds at the server's 10 a second, more than a video's
// delay on screen.
const KEPT = 30;

/** Whether RTP timestamp `a` is at or before `b`, on RTP's wrapping 32 bits. */
function notAfter(/** @type {number} */ a, /** @type {number} */ b) {
  return ((b - a) >>> 0) < 2 ** 31;
}

export class PinnedPlaces {
  constructor() {
    /** @type {{rtp: number | null, places: Map<string, Place>}[]} oldest first */
    this.tracked = [];
    /** @type {Map<string, Place>} each shape's last place, as last said */
    this.latest = new Map();
  }

  /** @param {Track} message */
  take(message) {
    const places = new Map(message.shapes.map((p) => [p.id, p]));
    for (const [id, place] of places) this.latest.set(id, place);
    if (message.rtp_timestamp === null) return;
    this.tracked.push({ rtp: message.rtp_timestamp, places });
    if (this.tracked.length > KEPT) this.tracked.shift();
  }

  /**
   * Where the shapes are on the frame of that RTP timestamp: the picture tracked at
   * it, or the last one before it; on a frame with none (this page's own camera), or
   * older than every one kept, the latest.
   * @param {number | null | undefined} rtp
   * @returns {Map<string, Place>}
   */
  at(rtp) {
    if (rtp === null || rtp === undefined) return this.latest;
    /** @type {{rtp: number, places: Map<string, Place>} | null} the last at or before */
    let before = null;
    /** @type {{rtp: number, places: Map<string, Place>} | null} the first after */
    let after = null;
    for (const { rtp: at, places } of this.tracked) {
      if (at === null) continue;
      if (notAfter(at, rtp)) before = { rtp: at, places };
      else if (!after) after = { rtp: at, places };
    }
    if (!before) return this.latest;
    const found = after ? between(before, after, rtp) : before.places;
    // A shape off or pinned since that picture: as it was said last.
    const merged = new Map(found);
    for (const [id, place] of this.latest) {
      if (place.state === "off" || !merged.has(id)) merged.set(id, place);
    }
    return merged;
  }

  /** A shape removed or unpinned: forget where it was. @param {string} id */
  forget(id) {
    this.latest.delete(id);
    for (const { places } of this.tracked) places.delete(id);
  }
}

/**
 * Where the shapes are on a frame between two tracked pictures (the server tracks up
 * to 10 pictures a second of a 30 a second video): each matrix blended by the frame's
 * place between them.
 * @param {{rtp: number, places: Map<string, Place>}} before
 * @param {{rtp: number, places: Map<string, Place>}} after
 * @param {number} rtp
 * @returns {Map<string, Place>}
 */
function between(before, after, rtp) {
  const share = ((rtp - before.rtp) >>> 0) / ((after.rtp - before.rtp) >>> 0);
  const blended = new Map(before.places);
  for (const [id, first] of before.places) {
    const second = after.places.get(id);
    if (!second || !first.matrix || !second.matrix) continue;
    const b = second.matrix;
    blended.set(id, { id, state: "tracking",
      matrix: first.matrix.map((v, i) => v + (b[i] - v) * share) });
  }
  return blended;
}

/**
 * A shape as it shows on a picture: a pinned one moved by its place's matrix (while
 * tracked, or lost but last seen well inside the picture), hidden (null) while its
 * object is out of view (lost, no matrix); any other as drawn.
 * @param {import("./shapes.js").Shape} shape
 * @param {Place | undefined} place
 * @returns {import("./shapes.js").Shape | null}
 */
export function placed(shape, place) {
  if (!shape.pinned || !place) return shape;
  if (place.state === "lost" && !place.matrix) return null;
  if (place.state === "off" || !place.matrix) return shape;
  const [a, b, c, d, e, f, g, h, i] = place.matrix;
  const points = shape.points.map(([x, y]) => {
    const w = g * x + h * y + i;
    return [(a * x + b * y + c) / w, (d * x + e * y + f) / w];
  });
  return { ...shape, points };
}
