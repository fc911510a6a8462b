// The call's two pictures. On the phone (layout "field") its own camera is the big
// picture, with the drawings aimed at it, and whoever else sends video (the expert's
// face, usually) the small one; on the expert's screen the camera looked at is big and
// their own small. The small picture can be hidden and moved from corner to corner;
// one's own camera can be turned off (nothing is sent, the others are told).
import { setStatus } from "./api.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";

/** Where the small picture may sit, in turn ("Move small picture"). */
const CORNERS = ["bottom-right", "bottom-left", "top-left", "top-right"];

/** @typedef {import("./quality.js").Picture} Picture */

export class Pictures {
  /**
   * @param {HTMLElement} root the call section
   * @param {boolean} field whether this is the phone's layout
   */
  constructor(root, field) {
    this.root = root;
    this.field = field;
    this.remote = $('[data-region="remote-video"]', HTMLVideoElement, root);
    this.local = $('[data-region="local-video"]', HTMLVideoElement, root);
    this.canvas = $('[data-region="annotations"]', HTMLCanvasElement, root);
    /** The big picture's frame, with the drawings over it. */
    this.screen = /** @type {HTMLElement} */ (this.canvas.parentElement);
    const big = field ? this.local : this.remote;
    const small = field ? this.remote : this.local;
    this.screen.prepend(big);
    big.classList.remove("pip");
    small.classList.add("pip");
    this.screen.after(small);
    this.big = big;
    this.small = small;
    /** Whether this person turned their camera off, the small picture hidden, and
     * which corner it is in (CORNERS). */
    this.cameraOff = false;
    this.smallHidden = false;
    this.corner = 0;
    /** @type {number | null} whose picture `remote` shows */
    this.remoteId = null;
    /** @type {Picture} the remote picture's state, as the quality watcher last saw it */
    this.picture = "none";
    this.button("self-view").addEventListener("click", () => {
      this.smallHidden = !this.smallHidden;
      this.showSmall();
    });
    this.button("self-view-move").addEventListener("click", () => {
      this.corner = (this.corner + 1) % CORNERS.length;
      this.showSmall();
    });
    this.showSmall();
  }

  /** @param {string} action */
  button(action) {
    return $(`[data-action="${action}"]`, HTMLButtonElement, this.root);
  }

  /** The small picture: shown or hidden, in the corner chosen. */
  showSmall() {
    const button = this.button("self-view");
    button.setAttribute("aria-pressed", String(this.smallHidden));
    button.textContent = this.smallHidden ? t("Show small picture") : t("Hide small picture");
    this.small.classList.toggle("pip-hidden", this.smallHidden);
    this.small.dataset.corner = CORNERS[this.corner];
    this.showSmallButtons();
  }

  /** Hide and Move only while there is a small picture (the expert at a desk without
   * a camera has none; nor has a phone while nobody else sends video). */
  showSmallButtons() {
    const none = this.small.hidden;
    this.button("self-view").hidden = none;
    this.button("self-view-move").hidden = none || this.smallHidden;
  }

  /** One's own camera, as it is now (a new camera too), on or off. @param {MediaStream} stream */
  showLocal(stream) {
    const video = stream.getVideoTracks();
    for (const track of video) track.enabled = !this.cameraOff;
    this.local.srcObject = video.length ? new MediaStream(video) : null;
    this.local.hidden = !this.field && !video.length;
    this.showSmallButtons();
    this.showCamera(stream);
  }

  /** The Camera on/off button. @param {MediaStream} stream one's own */
  showCamera(stream) {
    const button = this.button("camera");
    button.setAttribute("aria-pressed", String(this.cameraOff));
    button.textContent = this.cameraOff ? t("Camera on") : t("Camera off");
    button.disabled = !stream.getVideoTracks().length;
  }

  /**
   * Turn this person's camera off (nothing is sent, the others are told) or on.
   * @param {MediaStream} stream one's own
   * @param {import("./media.js").MediaLink | null} media the media connection, if any
   * @returns {boolean} whether there was a camera to turn off or on: then show it again
   */
  toggleCamera(stream, media) {
    const tracks = stream.getVideoTracks();
    if (!tracks.length) return false;
    this.cameraOff = !this.cameraOff;
    for (const track of tracks) track.enabled = !this.cameraOff;
    if (media) media.mute("video", this.cameraOff);
    setStatus(this.cameraOff ? t("Your camera is off.") : t("Your camera is on."));
    return true;
  }

  /**
   * Show someone else's camera: the one looked at (expert), or whoever else sends
   * video (phone: the small picture).
   * @param {Map<number, MediaStream>} streams what each other participant sends
   * @param {number | null} viewing whose camera the expert looks at
   */
  showRemote(streams, viewing) {
    let id = viewing;
    if (this.field) {
      id = [...streams.keys()].find((k) => streams.get(k)?.getVideoTracks().length) ?? null;
    }
    const stream = id === null ? null : streams.get(id);
    const video = stream ? stream.getVideoTracks() : [];
    const wanted = video.length ? video[0] : null;
    const current = this.remote.srcObject
      ? /** @type {MediaStream} */ (this.remote.srcObject).getVideoTracks()[0] : null;
    if (wanted !== current) this.remote.srcObject = wanted ? new MediaStream([wanted]) : null;
    this.remoteId = wanted ? id : null;
    if (this.field) this.remote.hidden = !wanted;
    this.showSmallButtons();
  }

  /**
   * The quality watcher's verdict on the remote picture.
   * @param {Picture} picture @returns {boolean} whether it changed
   */
  pictureIs(picture) {
    if (picture === this.picture) return false;
    this.picture = picture;
    this.remote.dataset.picture = picture;
    return true;
  }

  /** No picture any more (the call ended). */
  clear() {
    this.remote.srcObject = null;
    this.local.srcObject = null;
  }
}
