// The media mode on the call's screen (adapt.js, docs/protocol.md media.mode): on the
// expert's screen, that of the participant looked at, why, and its newest still in
// place of the frozen video; on a phone, its own ("Weak connection: video reduced").
import { $ } from "./dom.js";
import { t } from "./i18n.js";

/** @typedef {import("./signalling.js").MediaMode} MediaMode */

/**
 * Why a publisher is in its mode, in words, with what its link measured.
 * @param {string} reason @param {number | null} kbps @param {number | null} loss
 */
export function modeWhy(reason, kbps, loss) {
  const numbers = [kbps === null ? "" : `${kbps} kbit/s`,
    loss === null ? "" : t("{percent}% lost", { percent: Math.round(loss * 100) })]
    .filter(Boolean).join(", ");
  const words = { link_ok: t("good connection"), low_bandwidth: t("weak connection"),
    packet_loss: t("packets lost on the way") }[reason] || reason;
  return numbers ? `${words} (${numbers})` : words;
}

export class MediaModes {
  /** @param {HTMLElement} root the call section */
  constructor(root) {
    this.badge = $('[data-region="media-mode"]', HTMLElement, root);
    this.still = $('[data-region="still"]', HTMLImageElement, root);
    /** @type {Map<number, MediaMode>} each publisher's mode */
    this.modes = new Map();
    /** @type {Map<number, {url: string, seq: number}>} each one's newest still, in memory */
    this.stills = new Map();
  }

  /** @param {MediaMode} message */
  set(message) {
    this.modes.set(message.participant, message);
  }

  /** @param {number} id @returns {boolean} whether their mode is stills */
  inStills(id) {
    return this.modes.get(id)?.mode === "stills";
  }

  /** Someone's newest still. @param {import("./signalling.js").Still} still */
  add(still) {
    const old = this.stills.get(still.from);
    if (old) URL.revokeObjectURL(old.url);
    this.stills.set(still.from, { url: URL.createObjectURL(still.jpeg), seq: still.seq });
  }

  /** Forget someone's stills, and their mode with them. @param {number} id */
  forget(id) {
    const old = this.stills.get(id);
    if (old) URL.revokeObjectURL(old.url);
    this.stills.delete(id);
    this.modes.delete(id);
  }

  /** Forget every still (and the modes of those who sent them). */
  forgetStills() {
    for (const id of [...this.stills.keys()]) this.forget(id);
  }

  /** Forget every still and every mode: the server tells them again. */
  reset() {
    this.forgetStills();
    this.modes.clear();
  }

  /** Whether a still is shown in place of the video. */
  get stillShown() {
    return !this.still.hidden;
  }

  /**
   * Show the media mode: on the expert's screen, the viewed participant's, with its
   * newest still in place of the frozen video; on a phone, its own.
   * @param {boolean} expert
   * @param {number | null} viewing whose camera the expert looks at
   * @param {{mode: string, reason: string, kbps: number | null, loss: number | null}
   *   | null} own this client's own mode, as last sent (the phone's)
   */
  show(expert, viewing, own) {
    const message = expert ? (viewing === null ? null : this.modes.get(viewing)) : own;
    const mode = message ? message.mode : "video";
    const why = message ? modeWhy(message.reason, message.kbps, message.loss) : "";
    /** @type {Record<string, string>} */
    const words = expert
      ? { video: "", reduced: t("Reduced video: {why}", { why }),
        stills: t("Still pictures: {why}", { why }) }
      : { video: "", reduced: t("Weak connection: video reduced"),
        stills: t("Weak connection: sending still pictures") };
    const said = words[mode] || "";
    this.badge.textContent = said;
    this.badge.title = why;
    this.badge.hidden = !said;
    this.badge.dataset.mode = mode;
    const still = expert && mode === "stills" && viewing !== null ? this.stills.get(viewing) : null;
    if (still && this.still.dataset.seq !== String(still.seq)) {
      this.still.src = still.url;
      this.still.dataset.seq = String(still.seq);
    }
    this.still.hidden = !still;
  }
}
