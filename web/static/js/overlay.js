// The annotation overlay: a canvas laid over one <video>, showing the shapes drawn on
// that video's picture and the laser pointers moving over it.
//
// Shapes are kept in normalized picture coordinates (docs/protocol.md, "Coordinates
// and shapes") and drawn over the picture's content box, letterboxing excluded, so
// they stay on the same spot of the picture whatever the size of the screen. A pinned
// shape is drawn where the server last said it is on the frame on screen (pins.js):
// the overlay learns each frame shown, and its RTP timestamp, from
// requestVideoFrameCallback.
import { PinnedPlaces, placed } from "./pins.js";
import { contentBox, drawShapes } from "./shapes.js";

const POINTER_FADE_MS = 1500;
const POINTER_RADIUS_PX = 9;

/** @typedef {import("./shapes.js").Shape} Shape */

export class Overlay {
  /**
   * @param {HTMLCanvasElement} canvas laid exactly over `video`
   * @param {HTMLVideoElement} video
   */
  constructor(canvas, video) {
    this.canvas = canvas;
    this.video = video;
    /** @type {Map<string, Shape>} the shapes on this picture, in drawing order */
    this.shapes = new Map();
    /** @type {Shape | null} a shape being drawn here, not sent yet */
    this.draft = null;
    /** @type {Map<string, {x: number, y: number, color: string, at: number}>} */
    this.pointers = new Map();
    this.frame = 0;
    /** @type {PinnedPlaces} where the pinned shapes of this picture are */
    this.places = new PinnedPlaces();
    /** @type {number | null} the RTP timestamp of the frame on screen, if received */
    this.shown = null;
    /** @type {Map<string, import("./pins.js").Place> | null} while the picture is
     * frozen, where the pinned shapes were as it froze */
    this.held = null;
    this.watchFrames();
    new ResizeObserver(() => this.redraw()).observe(canvas);
    video.addEventListener("resize", () => this.redraw());
    video.addEventListener("loadedmetadata", () => this.redraw());
  }

  /** Follow the frames shown, to draw pinned shapes where they are on each. */
  watchFrames() {
    const video = this.video;
    if (!("requestVideoFrameCallback" in video)) return;  // then the latest place
    /** @type {VideoFrameRequestCallback} */
    const shown = (_now, metadata) => {
      const rtp = metadata.rtpTimestamp;
      this.shown = typeof rtp === "number" ? rtp : null;
      if (this.places.latest.size) this.redraw();
      video.requestVideoFrameCallback(shown);
    };
    video.requestVideoFrameCallback(shown);
  }

  /**
   * The picture is frozen (or not any more): its pinned shapes stay where they were as
   * it froze, and one hidden then (its object out of view) shows where it was drawn:
   * the frozen frame is the one everyone draws on.
   * @param {boolean} on
   */
  hold(on) {
    if (on === (this.held !== null)) return;
    this.held = on ? new Map(this.places.at(this.shown)) : null;
    this.redraw();
  }

  /** The picture's own size, or null until the video has one. */
  picture() {
    const { videoWidth: width, videoHeight: height } = this.video;
    return width && height ? { width, height } : null;
  }

  /** Where the picture shows on the canvas, in CSS pixels. */
  box() {
    const picture = this.picture();
    return picture && contentBox(
      { width: this.canvas.clientWidth, height: this.canvas.clientHeight }, picture);
  }

  /**
   * Normalized picture coordinates of a pointer event, or null outside the picture.
   * @param {{clientX: number, clientY: number}} event
   * @returns {[number, number] | null}
   */
  toPicture(event) {
    const box = this.box();
    if (!box) return null;
    const rect = this.canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left - box.x) / box.width;
    const y = (event.clientY - rect.top - box.y) / box.height;
    if (x < 0 || x > 1 || y < 0 || y > 1) return null;
    return [round(x), round(y)];
  }

  /** @param {Shape} shape */
  add(shape) {
    this.shapes.delete(shape.id);
    this.shapes.set(shape.id, shape);
    this.redraw();
  }

  /** @param {string} id */
  remove(id) {
    if (this.shapes.delete(id)) this.redraw();
  }

  clear() {
    this.shapes.clear();
    this.redraw();
  }

  /**
   * Show where someone points, fading out.
   * @param {string} who @param {number} x @param {number} y @param {string} color
   */
  point(who, x, y, color) {
    this.pointers.set(who, { x, y, color, at: performance.now() });
    this.redraw();
  }

  /** @param {Shape | null} shape */
  setDraft(shape) {
    this.draft = shape;
    this.redraw();
  }

  /** Draw at the next animation frame (once, however many changes come before it). */
  redraw() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  paint() {
    this.frame = 0;
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(canvas.clientWidth * ratio);
    const height = Math.round(canvas.clientHeight * ratio);
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
    const count = String(this.shapes.size);
    if (canvas.dataset.shapes !== count) canvas.dataset.shapes = count;
    const box = this.box();
    const picture = this.picture();
    if (!box || !picture) return;
    const held = this.held;
    const places = held ?? this.places.at(this.shown);
    const shapes = [...this.shapes.values()]
      .map((shape) => placed(shape, places.get(shape.id)) ?? (held ? shape : null))
      .filter((shape) => shape !== null);
    if (this.draft) shapes.push(this.draft);
    const hidden = String(this.shapes.size - shapes.length + (this.draft ? 1 : 0));
    if (canvas.dataset.hidden !== hidden) canvas.dataset.hidden = hidden;
    drawShapes(ctx, shapes, box, picture);
    const now = performance.now();
    for (const [who, p] of this.pointers) {
      const age = now - p.at;
      if (age > POINTER_FADE_MS) {
        this.pointers.delete(who);
        continue;
      }
      ctx.globalAlpha = 1 - age / POINTER_FADE_MS;
      ctx.fillStyle = p.color;
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(box.x + p.x * box.width, box.y + p.y * box.height, POINTER_RADIUS_PX, 0,
        2 * Math.PI);
      ctx.fill();
      ctx.stroke();
      ctx.globalAlpha = 1;
    }
    if (this.pointers.size) this.redraw();  // keep fading
  }
}

/** Four decimals: a tenth of a pixel on a 1000-pixel picture, and short messages. */
/** @param {number} v */
export function round(v) {
  return Math.min(1, Math.max(0, Math.round(v * 10000) / 10000));
}
