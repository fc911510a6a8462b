// The expert's annotation tools on an overlay: pointer, pen, arrow, circle and text,
// in a chosen colour, with undo and clear. Shapes go out as annotation.* messages
// (docs/protocol.md) the moment they are finished; the laser pointer as
// annotation.pointer, at most 10 a second.
import { round } from "./overlay.js";
import { placed } from "./pins.js";
import { placeLabel } from "./shapes.js";
import { t } from "./i18n.js";

const STROKE = 0.006;        // of the picture's width
const TEXT_STROKE = 0.005;   // letters six strokes high: 3% of the width
const POINTER_INTERVAL_MS = 100;
const PEN_MIN_STEP = 0.002;  // points closer than this to the last one are skipped
const PEN_MAX_POINTS = 1000;

/** @typedef {"pointer" | "pen" | "arrow" | "circle" | "text"} Tool */

export class AnnotationTools {
  /**
   * @param {import("./overlay.js").Overlay} overlay
   * @param {(message: {type: string, target: number} & Record<string, unknown>) => void} send
   * @param {() => number | null} target the participant whose picture is drawn on
   * @param {() => boolean} live whether that picture is live video (a shape drawn on it
   *   may be pinned to what it is drawn on)
   */
  constructor(overlay, send, target, live = () => false) {
    this.overlay = overlay;
    this.send = send;
    this.target = target;
    this.live = live;
    /** New shapes on live video are pinned to what they are drawn on (docs/ui.md). */
    this.pinning = true;
    /** @type {Tool} */
    this.tool = "arrow";
    this.color = "#ff3b30";  // the first swatch of _call.html
    /** @type {string[]} ids of the shapes drawn here, newest last, for undo */
    this.mine = [];
    this.serial = 0;
    this.lastPointer = 0;
    /** @type {{kind: "pen" | "arrow" | "circle", points: number[][], pointerId: number} | null} */
    this.stroke = null;
    this.prefix = Math.random().toString(36).slice(2, 8);
    const canvas = overlay.canvas;
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", () => this.cancel());
  }

  nextId() {
    this.serial += 1;
    return `${this.prefix}-${this.serial}`;
  }

  /** @param {PointerEvent} event */
  down(event) {
    const at = this.overlay.toPicture(event);
    const target = this.target();
    if (!at || target === null || event.button > 0) return;
    event.preventDefault();
    if (this.tool === "pointer") return this.pointAt(at, true);
    if (this.tool === "text") return this.askText(at, event);
    this.overlay.canvas.setPointerCapture(event.pointerId);
    this.stroke = { kind: this.tool, points: [at, at], pointerId: event.pointerId };
    if (this.tool === "pen") this.stroke.points = [at];
    this.preview();
  }

  /** @param {PointerEvent} event */
  move(event) {
    if (this.tool === "pointer") {
      const at = this.overlay.toPicture(event);
      if (at) this.pointAt(at, false);
      return;
    }
    if (!this.stroke || event.pointerId !== this.stroke.pointerId) return;
    const at = this.overlay.toPicture(event) || clampTo(this.overlay, event);
    if (!at) return;
    const points = this.stroke.points;
    if (this.stroke.kind === "pen") {
      const last = points[points.length - 1];
      if (Math.hypot(at[0] - last[0], at[1] - last[1]) < PEN_MIN_STEP) return;
      if (points.length >= PEN_MAX_POINTS) return;
      points.push(at);
    } else {
      points[1] = at;
    }
    this.preview();
  }

  /** @param {PointerEvent} event */
  up(event) {
    if (!this.stroke || event.pointerId !== this.stroke.pointerId) return;
    const { kind, points } = this.stroke;
    this.stroke = null;
    this.overlay.setDraft(null);
    this.finish({ id: this.nextId(), kind, points, color: this.color, width: STROKE });
  }

  cancel() {
    this.stroke = null;
    this.overlay.setDraft(null);
  }

  preview() {
    if (!this.stroke) return;
    this.overlay.setDraft({
      id: "draft", kind: this.stroke.kind, points: this.stroke.points,
      color: this.color, width: STROKE,
    });
  }

  /**
   * Show a shape here and send it to the others.
   * @param {import("./shapes.js").Shape} shape
   */
  finish(shape) {
    const target = this.target();
    if (target === null) return;
    if (this.pinning && this.live()) {
      shape.pinned = true;
      if (this.overlay.shown !== null) shape.at = this.overlay.shown;
    }
    this.overlay.add(shape);
    this.mine.push(shape.id);
    this.send({ type: "annotation.add", target, shape });
  }

  /** @param {number[]} at @param {boolean} force */
  pointAt(at, force) {
    const target = this.target();
    const now = performance.now();
    if (target === null) return;
    this.overlay.point("me", at[0], at[1], this.color);
    if (!force && now - this.lastPointer < POINTER_INTERVAL_MS) return;
    this.lastPointer = now;
    this.send({ type: "annotation.pointer", target, x: at[0], y: at[1], color: this.color });
  }

  /**
   * A small text field where the label goes; Enter draws it, Escape drops it.
   * @param {number[]} at @param {PointerEvent} event
   */
  askText(at, event) {
    const screen = /** @type {HTMLElement} */ (this.overlay.canvas.parentElement);
    screen.querySelector(".label-input")?.remove();
    const input = document.createElement("input");
    input.className = "label-input";
    input.maxLength = 200;
    input.setAttribute("aria-label", t("Label text, Enter to place it"));
    input.placeholder = t("Label, then Enter");
    const rect = screen.getBoundingClientRect();
    input.style.left = `${Math.min(event.clientX - rect.left, rect.width - 200)}px`;
    input.style.top = `${Math.min(event.clientY - rect.top, rect.height - 48)}px`;
    screen.append(input);
    input.focus();
    input.addEventListener("keydown", (e) => {
      if (e.key === "Escape") input.remove();
      if (e.key !== "Enter") return;
      e.preventDefault();
      const text = input.value.trim();
      input.remove();
      if (text) {
        // All of it inside the picture, on every screen and in the snapshot.
        const picture = this.overlay.picture();
        const point = picture ? placeLabel(text, at, TEXT_STROKE, picture) : at;
        this.finish({
          id: this.nextId(), kind: "text", points: [point], color: this.color,
          width: TEXT_STROKE, text,
        });
      }
    });
    input.addEventListener("blur", () => setTimeout(() => input.remove(), 0));
  }

  /**
   * Pin new shapes, or not; not pinning any more also unpins this page's pinned shapes,
   * each left where it shows now (docs/protocol.md: sent again, unpinned).
   * @param {boolean} on
   */
  setPinning(on) {
    this.pinning = on;
    const target = this.target();
    if (on || target === null) return;
    const places = this.overlay.places.at(this.overlay.shown);
    for (const id of this.mine) {
      const shape = this.overlay.shapes.get(id);
      if (!shape || !shape.pinned) continue;
      const flat = { ...(placed(shape, places.get(id)) || shape) };
      flat.points = flat.points.map(([x, y]) => [round(x), round(y)]);  // in the picture
      delete flat.pinned;
      delete flat.at;
      this.overlay.add(flat);
      this.send({ type: "annotation.add", target, shape: flat });
    }
  }

  /** Remove the last shape drawn here that is still shown. */
  undo() {
    const target = this.target();
    while (this.mine.length) {
      const id = /** @type {string} */ (this.mine.pop());
      if (!this.overlay.shapes.has(id)) continue;
      this.overlay.remove(id);
      if (target !== null) this.send({ type: "annotation.remove", target, id });
      return;
    }
  }

  /** Remove every shape on the picture, everyone's. */
  clear() {
    const target = this.target();
    this.overlay.clear();
    this.mine = [];
    if (target !== null) this.send({ type: "annotation.clear", target });
  }

  /** The shapes on the picture now, for a snapshot. */
  shapes() {
    return [...this.overlay.shapes.values()];
  }
}

/**
 * A point dragged past the picture's edge, held at the edge.
 * @param {import("./overlay.js").Overlay} overlay @param {PointerEvent} event
 */
function clampTo(overlay, event) {
  const box = overlay.box();
  if (!box) return null;
  const rect = overlay.canvas.getBoundingClientRect();
  return [
    round((event.clientX - rect.left - box.x) / box.width),
    round((event.clientY - rect.top - box.y) / box.height),
  ];
}
