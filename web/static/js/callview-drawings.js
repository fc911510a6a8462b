// The drawings of the call, by the participant whose picture they are drawn on, shown
// over the big picture (overlay.js); and, on the expert's screen, the drawing tools
// (tools.js) wired to their buttons: the tool, the colour, undo and clear.
import { $ } from "./dom.js";
import { PinnedPlaces } from "./pins.js";

/** @typedef {import("./shapes.js").Shape} Shape */
/** @typedef {import("./tools.js").Tool} Tool */

export class Drawings {
  /**
   * @param {import("./overlay.js").Overlay} overlay over the big picture
   * @param {() => number | null} target the participant whose picture is big
   */
  constructor(overlay, target) {
    this.overlay = overlay;
    this.target = target;
    /** @type {Map<number, Map<string, Shape>>} shapes by the participant they are drawn on */
    this.shapes = new Map();
    /** @type {Map<number, PinnedPlaces>} where pinned shapes are, by the same */
    this.places = new Map();
  }

  /** Where the pinned shapes on someone's picture are. @param {number | null} id */
  placesOf(id) {
    if (id === null) return new PinnedPlaces();
    let places = this.places.get(id);
    if (!places) {
      places = new PinnedPlaces();
      this.places.set(id, places);
    }
    return places;
  }

  /** Where pinned shapes are now. @param {import("./pins.js").Track} message */
  track(message) {
    this.placesOf(message.target).take(message);
    if (message.target === this.target()) this.overlay.redraw();
  }

  /** The shapes on someone's picture. @param {number | null} id */
  of(id) {
    if (id === null) return new Map();
    let shapes = this.shapes.get(id);
    if (!shapes) {
      shapes = new Map();
      this.shapes.set(id, shapes);
    }
    return shapes;
  }

  /**
   * The shapes are the call's as the server has them now, drawn while this page was
   * away included (docs/protocol.md, Coming back).
   * @param {import("./signalling.js").Joined["annotations"]} annotations
   */
  load(annotations) {
    this.shapes.clear();
    for (const { target, shape } of annotations || []) this.of(target).set(shape.id, shape);
  }

  /** Draw the shapes on someone's picture, the big one. @param {number | null} id */
  show(id) {
    this.overlay.shapes = this.of(id);
    this.overlay.places = this.placesOf(id);
    this.overlay.redraw();
  }

  /** @param {import("./signalling.js").Annotation} message from someone else */
  annotate(message) {
    const shapes = this.of(message.target);
    if (message.type === "annotation.add") {
      shapes.delete(message.shape.id);
      shapes.set(message.shape.id, message.shape);
      if (!message.shape.pinned) this.placesOf(message.target).forget(message.shape.id);
    } else if (message.type === "annotation.remove") {
      shapes.delete(message.id);
      this.placesOf(message.target).forget(message.id);
    } else if (message.type === "annotation.clear") {
      shapes.clear();
      this.places.delete(message.target);
    }
    if (message.target !== this.target()) return;
    if (message.type === "annotation.pointer") {
      this.overlay.point(String(message.from), message.x, message.y, message.color);
    } else {
      this.overlay.redraw();
    }
  }

  /** No drawings any more (the call ended). */
  clear() {
    this.shapes.clear();
    this.places.clear();
    this.overlay.shapes = new Map();
    this.overlay.places = new PinnedPlaces();
    this.overlay.redraw();
  }
}

/**
 * Show the expert's drawing tools and wire their buttons.
 * @param {HTMLElement} root the call section
 * @param {import("./tools.js").AnnotationTools} tools
 */
export function wireTools(root, tools) {
  const canvas = tools.overlay.canvas;
  $("#draw-tools", HTMLElement, root).hidden = false;
  canvas.classList.add("drawing");
  /** @param {string} action @param {() => void} handler */
  const on = (action, handler) => $(`[data-action="${action}"]`, HTMLElement, root)
    .addEventListener("click", handler);
  for (const tool of /** @type {Tool[]} */ (["pointer", "pen", "arrow", "circle", "text"])) {
    on(`tool-${tool}`, () => {
      tools.tool = tool;
      const buttons = /** @type {NodeListOf<HTMLElement>} */ (
        root.querySelectorAll('[data-action^="tool-"]'));
      for (const b of buttons) {
        b.setAttribute("aria-pressed", String(b.dataset.action === `tool-${tool}`));
      }
      canvas.dataset.tool = tool;
    });
  }
  canvas.dataset.tool = tools.tool;
  const swatches = [.../** @type {NodeListOf<HTMLElement>} */ (
    root.querySelectorAll('[data-action="color"]'))];
  for (const swatch of swatches) {
    swatch.addEventListener("click", () => {
      tools.color = String(swatch.dataset.color);  // _call.html gives each swatch one
      for (const b of swatches) b.setAttribute("aria-pressed", String(b === swatch));
    });
  }
  const pin = $('[data-action="pin"]', HTMLElement, root);
  pin.addEventListener("click", () => {
    tools.setPinning(!tools.pinning);
    pin.setAttribute("aria-pressed", String(tools.pinning));
  });
  on("undo", () => tools.undo());
  on("clear", () => tools.clear());
}
