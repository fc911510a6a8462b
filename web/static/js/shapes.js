// Drawing annotation shapes on a canvas, by docs/protocol.md's "Drawing shapes" rules.
//
// The server draws a snapshot's shapes by the same rules (videoassist/snapshots/
// render.py), so the stored picture shows what the expert saw. Sizes are worked out
// in the picture's own pixels (the video's intrinsic size), then scaled to the box the
// picture fills on screen: a shape covers the same part of the picture on a phone, on
// a desktop and in the snapshot.

const ARROW_HEAD_STROKES = 4;
const ARROW_HEAD_HALF_ANGLE = (28 * Math.PI) / 180;
const TEXT_HEIGHT_STROKES = 6;
const MIN_TEXT_HEIGHT_PX = 10;
const MAX_TEXT_HEIGHT = 0.25;
// The faces the server draws snapshot labels in (videoassist/snapshots/fonts.py, Bold
// in every script), in its order, so that each character falls back as it does there;
// where they are not installed (phones, most desktops), the system's own sans-serif.
const LABEL_FONTS = '"Noto Sans", "Noto Sans Arabic", "Noto Sans Hebrew", '
  + '"Noto Sans Devanagari", "Noto Sans CJK SC", system-ui, "Segoe UI", Roboto, sans-serif';

/**
 * @typedef {{id: string, kind: "pen" | "arrow" | "circle" | "text",
 *   points: number[][], color: string, width: number, text?: string, pinned?: boolean,
 *   at?: number}} Shape
 *   `pinned`: followed on the video by the server (pins.js), from the frame `at`
 * @typedef {{x: number, y: number, width: number, height: number}} Box
 */

/**
 * Where a picture of `picture` size shows inside an element of `element` size with
 * `object-fit: contain`: centred, scaled to fit, letterboxed.
 * @param {{width: number, height: number}} element
 * @param {{width: number, height: number}} picture
 * @returns {Box | null} null while the picture's size is unknown
 */
export function contentBox(element, picture) {
  if (!picture.width || !picture.height || !element.width || !element.height) return null;
  const scale = Math.min(element.width / picture.width, element.height / picture.height);
  const width = picture.width * scale;
  const height = picture.height * scale;
  return {
    x: (element.width - width) / 2, y: (element.height - height) / 2, width, height,
  };
}

/**
 * Black around light colours, white around dark ones (Rec. 601 luma).
 * @param {string} color "#rrggbb"
 */
export function outlineColor(color) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b >= 128 ? "#000000" : "#ffffff";
}

/**
 * Capital-letter height of a label in picture pixels.
 * @param {number} stroke the stroke in picture pixels
 * @param {number} pictureHeight
 */
export function textHeight(stroke, pictureHeight) {
  return Math.round(Math.min(Math.max(MIN_TEXT_HEIGHT_PX, TEXT_HEIGHT_STROKES * stroke),
    Math.max(MIN_TEXT_HEIGHT_PX, pictureHeight * MAX_TEXT_HEIGHT)));
}

/**
 * Set `ctx` to draw a label of this stroke on this picture: the font sized so that a
 * capital letter is the label's height, whatever the face; one left-to-right line
 * from the point, right-to-left words reversed within it. Answers that height.
 * @param {CanvasRenderingContext2D} ctx @param {number} stroke in picture pixels
 * @param {{width: number, height: number}} picture
 */
function labelFont(ctx, stroke, picture) {
  const letters = textHeight(stroke, picture.height);
  ctx.font = `700 100px ${LABEL_FONTS}`;
  const capital = ctx.measureText("H").actualBoundingBoxAscent || 72;
  ctx.font = `700 ${(100 * letters) / capital}px ${LABEL_FONTS}`;
  ctx.textBaseline = "alphabetic";
  ctx.direction = "ltr";
  ctx.textAlign = "left";
  return letters;
}

/** How far a label's outline reaches past its letters, in picture pixels. @param {number} letters */
const labelOutline = (letters) => Math.max(2, letters / 6);

/**
 * Where a label asked for at `at` goes so that all of it is inside the picture: moved
 * left (and up) by as much as it would have run past the right (and bottom) edge, with
 * a margin of 2% of the picture for the server's face, whose letters are a little wider
 * or narrower than the browser's (snapshots draw it where the screen does); and right
 * (and down) by as much as its outline would run past the left (and top) edge. A
 * label wider than the picture starts at its left edge.
 * @param {string} text @param {number[]} at normalized picture coordinates
 * @param {number} width the shape's stroke, as a share of the picture's width
 * @param {{width: number, height: number}} picture
 * @returns {number[]} normalized picture coordinates
 */
export function placeLabel(text, at, width, picture) {
  const ctx = /** @type {CanvasRenderingContext2D} */ (
    document.createElement("canvas").getContext("2d"));
  const stroke = Math.max(1, width * picture.width);
  const letters = labelFont(ctx, stroke, picture);
  const metrics = ctx.measureText(text);
  const reach = labelOutline(letters);
  const margin = 0.02;
  const wide = (metrics.width + 2 * reach) / picture.width + margin;
  const tall = (letters + metrics.actualBoundingBoxDescent + 2 * reach) / picture.height
    + margin;
  // Its outline reaches left of and above the point too (and accents rise above it).
  const left = reach / picture.width + margin / 4;
  const top = (reach + letters / 4) / picture.height;
  const round = (/** @type {number} */ v) => Math.round(v * 10000) / 10000;
  return [round(Math.max(left, Math.min(at[0], 1 - wide))),
    round(Math.max(top, Math.min(at[1], 1 - tall)))];
}

/**
 * Draw `shapes` in order onto `ctx`, for a picture of `picture` size shown in `box`
 * (both in the context's current units, CSS pixels for an overlay).
 * @param {CanvasRenderingContext2D} ctx
 * @param {Shape[]} shapes
 * @param {Box} box
 * @param {{width: number, height: number}} picture the picture's own size in pixels
 */
export function drawShapes(ctx, shapes, box, picture) {
  const scale = box.width / picture.width;
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.x, box.y, box.width, box.height);
  ctx.clip();
  ctx.translate(box.x, box.y);
  ctx.scale(scale, scale);
  for (const shape of shapes) {
    const stroke = Math.max(1, shape.width * picture.width);
    const points = shape.points.map(([x, y]) => [x * picture.width, y * picture.height]);
    ctx.strokeStyle = shape.color;
    ctx.fillStyle = shape.color;
    ctx.lineWidth = stroke;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    DRAW[shape.kind](ctx, shape, points, stroke, picture);
  }
  ctx.restore();
}

/** @param {CanvasRenderingContext2D} ctx @param {number[]} at @param {number} stroke */
function dot(ctx, at, stroke) {
  ctx.beginPath();
  ctx.arc(at[0], at[1], stroke / 2, 0, 2 * Math.PI);
  ctx.fill();
}

const DRAW = {
  /** @param {CanvasRenderingContext2D} ctx @param {Shape} _shape @param {number[][]} points @param {number} stroke */
  pen(ctx, _shape, points, stroke) {
    if (points.length === 1) return dot(ctx, points[0], stroke);
    ctx.beginPath();
    ctx.moveTo(points[0][0], points[0][1]);
    for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  },

  /** @param {CanvasRenderingContext2D} ctx @param {Shape} _shape @param {number[][]} points @param {number} stroke */
  arrow(ctx, _shape, points, stroke) {
    const [[tx, ty], [hx, hy]] = points;
    const length = Math.hypot(hx - tx, hy - ty);
    if (length === 0) return dot(ctx, [hx, hy], stroke);
    const head = Math.min(ARROW_HEAD_STROKES * stroke, length);
    const ux = (hx - tx) / length;
    const uy = (hy - ty) / length;
    // The shaft stops inside the head, so the tip stays sharp under a thick stroke.
    const bx = hx - ux * head;
    const by = hy - uy * head;
    if (length > head) {
      ctx.beginPath();
      ctx.moveTo(tx, ty);
      ctx.lineTo(bx + (ux * head) / 2, by + (uy * head) / 2);
      ctx.stroke();
    }
    const half = head * Math.tan(ARROW_HEAD_HALF_ANGLE);
    ctx.beginPath();
    ctx.moveTo(hx, hy);
    ctx.lineTo(bx - uy * half, by + ux * half);
    ctx.lineTo(bx + uy * half, by - ux * half);
    ctx.closePath();
    ctx.fill();
  },

  /** @param {CanvasRenderingContext2D} ctx @param {Shape} _shape @param {number[][]} points */
  circle(ctx, _shape, points) {
    const [[cx, cy], [ex, ey]] = points;
    ctx.beginPath();
    ctx.arc(cx, cy, Math.hypot(ex - cx, ey - cy), 0, 2 * Math.PI);
    ctx.stroke();
  },

  /**
   * @param {CanvasRenderingContext2D} ctx @param {Shape} shape @param {number[][]} points
   * @param {number} stroke @param {{width: number, height: number}} picture
   */
  text(ctx, shape, points, stroke, picture) {
    const letters = labelFont(ctx, stroke, picture);
    const [x, y] = [points[0][0], points[0][1] + letters];
    ctx.lineWidth = 2 * labelOutline(letters);
    ctx.strokeStyle = outlineColor(shape.color);
    ctx.strokeText(shape.text || "", x, y);
    ctx.fillText(shape.text || "", x, y);
  },
};
