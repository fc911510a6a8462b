// A job's snapshots in its record, each with its caption to edit. The images are
// fetched with the token and shown from object URLs that are revoked when the record
// changes or the page goes: nothing is cached.
import { apiBlob } from "./api.js";
import { $ } from "./dom.js";
import { when } from "./format.js";

// A snapshot of GET /api/jobs/{id} (docs/api.md).
/**
 * @typedef {{name: string, role: string}} Person
 * @typedef {{id: number, original_id: number | null, version: number, author: Person,
 *   camera: Person, captured_at: number, width: number, height: number,
 *   caption: string | null, image_url: string}} Snapshot
 */

export class Snapshots {
  /**
   * @param {{request: import("./console-session.js").Request,
   *   setStatus: (text: string) => void}} options
   */
  constructor({ request, setStatus }) {
    this.request = request;
    this.setStatus = setStatus;
    /** @type {string[]} object URLs of the images shown, revoked on the next render */
    this.images = [];
    addEventListener("pagehide", () => this.forget());
  }

  /** Let go of the images shown. */
  forget() {
    for (const url of this.images) URL.revokeObjectURL(url);
    this.images = [];
  }

  /**
   * @param {Snapshot[]} snapshots
   * @param {() => boolean} current whether the record these belong to is still shown
   * @param {string} token to fetch the images with
   */
  show(snapshots, current, token) {
    this.forget();
    const cards = snapshots.map((s) => {
      const template = $("#snapshot-template", HTMLTemplateElement);
      const figure = /** @type {HTMLElement} */ ($("figure", HTMLElement, template.content)
        .cloneNode(true));
      figure.dataset.snapshot = String(s.id);
      const image = $("img", HTMLImageElement, figure);
      image.alt = `Snapshot ${s.original_id ?? s.id}, version ${s.version}, of ${s.camera.name}'s camera`;
      image.width = s.width;
      image.height = s.height;
      $("figcaption", HTMLElement, figure).textContent =
        `v${s.version} · ${s.camera.name}'s camera · by ${s.author.name} · ` +
        `${when(s.captured_at)} · ${s.width}×${s.height}`;
      const form = $("form", HTMLFormElement, figure);
      const input = /** @type {HTMLInputElement} */ (form.elements.namedItem("caption"));
      input.value = s.caption ?? "";
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          await this.request(`/api/snapshots/${s.id}`, {
            method: "PATCH", body: { caption: input.value.trim() || null },
          });
          this.setStatus("Caption saved");
        } catch (error) {
          this.setStatus(/** @type {Error} */ (error).message);
        }
      });
      apiBlob(s.image_url, token).then((blob) => {
        if (!current()) return;  // the view changed while it loaded
        const url = URL.createObjectURL(blob);
        this.images.push(url);
        image.src = url;
      }, (error) => this.setStatus(/** @type {Error} */ (error).message));
      return figure;
    });
    $('[data-region="snapshots"]').replaceChildren(...cards);
  }
}
