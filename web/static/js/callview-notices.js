// What the call's screen says in words: notices over the phone's picture, the phone's
// Chat button, and the note over the big picture (who is not there, why no picture).
//
// On the phone (layout "field") the picture is the whole screen and the status line is
// out of sight: a chat line, someone joining or leaving, a snapshot kept are said over
// the picture for a few seconds, until "Chat" brings back the rest of the page.
import { setStatus } from "./api.js";
import { $ } from "./dom.js";
import { shownName } from "./format.js";
import { t } from "./i18n.js";

// Notices over the phone's picture: how long each stays, how many at once.
const NOTICE_MS = 6000;
const NOTICES_AT_ONCE = 3;

export class Notices {
  /**
   * @param {HTMLElement} root the call section
   * @param {boolean} field whether this is the phone's layout, where the picture may
   *   be the whole screen
   */
  constructor(root, field) {
    this.field = field;
    this.region = $('[data-region="notices"]', HTMLElement, root);
    this.note = $("#screen-note", HTMLElement, root);
    this.root = root;
    this.button = $('[data-action="panel"]', HTMLElement, root);
    /** The phone's chat and the rest shown (else the picture fills the screen), and
     * the chat lines come since it was last shown. */
    this.panelOpen = false;
    this.unread = 0;
    this.button.addEventListener("click", () => {
      this.panelOpen = !this.panelOpen;
      if (this.panelOpen) this.unread = 0;
      this.showPanelButton();
    });
    this.showPanelButton();
  }

  /**
   * A notice over the picture for a few seconds, while it is the whole screen. At most
   * three at once, the oldest going first.
   * @param {string} text
   */
  notice(text) {
    if (!this.fullScreen()) return;
    const line = document.createElement("p");
    line.textContent = text;
    this.region.append(line);
    while (this.region.childElementCount > NOTICES_AT_ONCE) this.region.firstElementChild?.remove();
    setTimeout(() => line.remove(), NOTICE_MS);
  }

  /** Whether the picture is the whole screen: the phone's call on the join page, the
   * chat not shown (app.css, body.in-call). */
  fullScreen() {
    return this.field && !this.panelOpen && document.body.classList.contains("in-call");
  }

  /**
   * Say what someone else did, once: over the phone's picture while it is the whole
   * screen (its status line, over the picture's top, keeps saying the call's state and
   * what became of this person's own doings), else in the status line.
   * @param {string} text
   */
  tell(text) {
    if (this.fullScreen()) this.notice(text);
    else setStatus(text);
  }

  /**
   * A chat line, over the picture while the chat is out of sight, and counted on the
   * Chat button: one someone else said now (not one said before this page joined).
   * @param {import("./signalling.js").ChatMessage} line
   * @param {number | null} me this client's participant id
   */
  chat({ message, replayed }, me) {
    if (replayed || message.participant_id === me || !this.fullScreen()) return;
    this.unread += 1;
    this.showPanelButton();
    this.notice(`${shownName(message.from)}: ${message.text}`);
  }

  /** The phone's Chat button: what it shows, and the chat lines waiting to be read. */
  showPanelButton() {
    this.button.hidden = !this.field;
    this.button.setAttribute("aria-pressed", String(this.panelOpen));
    this.button.textContent = this.panelOpen ? t("Back to the picture")
      : this.unread ? t("Chat ({count})", { count: this.unread }) : t("Chat");
    this.root.classList.toggle("panel-open", this.panelOpen);
  }

  /** The words over the big picture, none for nothing to say. @param {string} text */
  screenNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }
}

/**
 * The words over the expert's big picture: why there is no picture, if there is none.
 * @param {object} seen
 * @param {string | null} seen.name whose camera the expert looks at, null for nobody's
 * @param {string | null} seen.away "Anna disconnected, reconnecting 0:12": the one
 *   looked at, or anyone when no picture is shown, is away
 * @param {string | null} seen.left "Anna left the call.", while it is to be read
 * @param {boolean} seen.paused they turned their camera off
 * @param {boolean} seen.shown their camera's picture is there
 * @param {import("./quality.js").Picture} seen.picture the quality watcher's verdict on it
 * @param {boolean} seen.stillShown a still is shown in its place
 * @returns {string}
 */
export function expertNote({ name, away, left, paused, shown, picture, stillShown }) {
  // Nobody's picture to show: someone away is why, else someone who just left.
  if (away !== null) return away;
  if (name === null) return left ?? t("Waiting for someone to join…");
  if (paused) return t("{name} paused their camera.", { name });
  if (!shown) return t("Waiting for {name}'s camera…", { name });
  if (picture === "frozen") return t("Video frozen: no new picture from {name}.", { name });
  if (picture === "stills" && !stillShown) {
    return t("Waiting for a still picture from {name}…", { name });
  }
  return "";
}

/**
 * The words over the phone's own picture: that the camera is off; else, while nobody
 * else is in the call, who is coming.
 * @param {object} seen
 * @param {boolean} seen.camera the phone's camera is on
 * @param {boolean} seen.others someone else is in the call
 * @param {boolean} seen.ready the call is up (not coming back: the status says so)
 * @param {string | null} seen.awaited who is coming, as said to the person on the phone
 * @param {string | null} seen.left "Anna left the call.", while it is to be read
 * @returns {string}
 */
export function fieldNote({ camera, others, ready, awaited, left }) {
  if (!camera) return t("Your camera is off.");
  if (others || !ready) return "";
  const coming = awaited ? t("{name} will join in a moment.", { name: awaited })
    : t("Someone will join in a moment.");
  return left === null ? coming : `${left} ${coming}`;
}
