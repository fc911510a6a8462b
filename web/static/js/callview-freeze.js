// The call's frozen picture (docs/protocol.md, Freeze). A freeze is the call's, not
// one screen's: the expert asks, and everyone, the person holding the camera included,
// is shown the one frame the server took, with the drawings over it, until it is
// resumed. The expert's own screen pauses at once, before the frame comes.
import { $ } from "./dom.js";
import { t } from "./i18n.js";

export class Freeze {
  /**
   * @param {HTMLElement} root the call section
   * @param {object} parts
   * @param {HTMLElement} parts.screen the big picture's frame
   * @param {HTMLVideoElement} parts.remote the other camera's video
   * @param {boolean} parts.expert whether this screen may freeze and resume
   * @param {() => number | null} parts.me this client's participant id
   * @param {(id: number) => string} parts.nameOf a participant's name
   * @param {(message: object) => void} parts.send a message to the server
   * @param {(on: boolean) => void} [parts.hold] told whether the big picture is frozen
   */
  constructor(root, { screen, remote, expert, me, nameOf, send, hold = () => {} }) {
    this.hold = hold;
    this.root = root;
    this.screen = screen;
    this.remote = remote;
    this.expert = expert;
    this.me = me;
    this.nameOf = nameOf;
    this.send = send;
    this.image = $('[data-region="frozen"]', HTMLImageElement, root);
    /** @type {{camera: number, by: number, url: string} | null} the call's frozen
     * picture, from an object URL */
    this.picture = null;
    /** Asked to freeze, the server's frame not here yet (expert). */
    this.freezing = false;
  }

  /**
   * Whether the big picture is frozen, or being frozen by this expert.
   * @param {number | null} target whose picture is big
   */
  on(target) {
    return this.freezing || (this.picture !== null && this.picture.camera === target);
  }

  /**
   * Whether this expert froze the picture of `camera`, or is freezing one.
   * @param {number | null} camera
   */
  mine(camera) {
    return this.freezing || (this.picture !== null && this.picture.by === this.me()
      && this.picture.camera === camera);
  }

  /**
   * Freeze the viewed camera's picture for everyone, to draw on a frame that holds
   * still, or resume it; the call goes on. This screen pauses at once; the frame every
   * screen shows, this one's too, comes from the server (`frozen`).
   * @param {boolean} on
   * @param {number | null} viewing whose camera the expert looks at
   */
  ask(on, viewing) {
    if (!this.expert || on === this.on(viewing)) return;
    if (on) {
      if (viewing === null) return;
      this.freezing = true;
      this.send({ type: "freeze", camera: viewing });
    } else {
      this.freezing = false;
      this.send({ type: "freeze.end" });
      this.drop();  // live here at once; the others on freeze.ended
    }
    this.show(viewing);
  }

  /** The server's frame came. @param {import("./signalling.js").Frozen} frozen */
  received(frozen) {
    this.drop();
    this.picture = { camera: frozen.camera, by: frozen.by, url: URL.createObjectURL(frozen.jpeg) };
    this.freezing = false;
  }

  /** The server did not freeze: back to the live picture. @param {number | null} target */
  refused(target) {
    if (!this.freezing) return;
    this.freezing = false;
    this.show(target);
  }

  /**
   * The freeze is over (freeze.ended).
   * @returns {boolean} whether it was of this client's own camera
   */
  over() {
    const mine = this.picture !== null && this.picture.camera === this.me();
    this.drop();
    return mine;
  }

  /** No freeze any more, nor one asked for (a new connection, the call ended). */
  reset() {
    this.freezing = false;
    this.drop();
  }

  /**
   * Show the frozen frame over the big picture, when it is of that camera.
   * @param {number | null} target whose picture is big
   */
  show(target) {
    const picture = this.picture && this.picture.camera === target ? this.picture : null;
    if (picture && this.image.src !== picture.url) this.image.src = picture.url;
    this.image.hidden = !picture;
    const on = this.on(target);
    this.hold(on);
    this.root.classList.toggle("frozen", on);
    this.screen.dataset.frozen = picture && picture.by !== this.me()
      ? t("Frozen by {name}", { name: this.nameOf(picture.by) }) : t("Frozen");
    if (!this.expert) return;
    if (on) this.remote.pause(); else this.remote.play().catch(() => {});
    const button = $('[data-action="freeze"]', HTMLElement, this.root);
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? t("Resume") : t("Freeze");
  }

  drop() {
    if (this.picture) URL.revokeObjectURL(this.picture.url);
    this.picture = null;
    this.image.removeAttribute("src");
  }
}
