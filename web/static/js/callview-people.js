// The people in the call: the list the call section shows (data-region="participants"),
// each one's name, muted or away, the expert's button to look at their camera, and
// staff's button to remove someone who came by a link; and each one's sound.
import { personLabel } from "./format.js";
import { t } from "./i18n.js";

/**
 * Who the expert looks at first: the customer, then a technician, then anyone.
 * @type {Record<string, number>}
 */
const VIEW_ORDER = { customer: 0, technician: 1 };

/** @typedef {import("./signalling.js").Participant} Participant */

/**
 * Whose camera the expert looks at: the one they chose, while it sends a picture; else
 * the likeliest one that does (VIEW_ORDER, then the lowest id); else the one they
 * chose, while in the call; else nobody's.
 * @param {Iterable<Participant>} participants everyone but this client
 * @param {(id: number) => boolean} sends whether their camera's picture comes
 * @param {number | null} viewing whose camera the expert looks at now
 * @returns {number | null}
 */
export function whomToView(participants, sends, viewing) {
  const all = [...participants];
  const present = all.some((p) => p.id === viewing);
  if (viewing !== null && present && sends(viewing)) return viewing;
  const senders = all.filter((p) => sends(p.id))
    .sort((a, b) => (VIEW_ORDER[a.role] ?? 2) - (VIEW_ORDER[b.role] ?? 2) || a.id - b.id);
  return senders.length ? senders[0].id : present ? viewing : null;
}

/**
 * List the people in the call, or say that nobody else is there yet.
 * @param {HTMLElement} region data-region="participants"
 * @param {Iterable<Participant>} participants everyone but this client
 * @param {object} shown
 * @param {(id: number) => boolean} shown.muted whether they turned their microphone off
 * @param {(id: number) => string | null} shown.away how long they have been away
 *   ("disconnected, reconnecting 0:12"), or null if they are not
 * @param {(id: number) => boolean} shown.sends whether their camera's picture comes
 * @param {((id: number) => void) | null} shown.view show their camera big (the
 *   expert), null for no such button
 * @param {number | null} shown.viewing whose camera is shown big
 * @param {((id: number) => void) | null} shown.remove remove them from the call for
 *   good (staff), null for no such button
 */
export function listPeople(region, participants, { muted, away, sends, view, viewing, remove }) {
  const items = [...participants].map((p) => {
    const item = document.createElement("li");
    item.dataset.participant = String(p.id);
    const label = muted(p.id) ? t("{person} · muted", { person: personLabel(p) }) : personLabel(p);
    const words = away(p.id);
    const awaySpan = words === null ? null
      : Object.assign(document.createElement("span"), { className: "away" });
    if (awaySpan) {
      awaySpan.dataset.region = "away";
      awaySpan.dataset.participant = String(p.id);
      awaySpan.textContent = words;
    }
    if (view && sends(p.id)) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.setAttribute("aria-pressed", String(p.id === viewing));
      button.setAttribute("aria-label", t("{person}: show their camera", { person: label }));
      button.addEventListener("click", () => view(p.id));
      item.append(button);
    } else {
      item.textContent = label;
    }
    if (awaySpan) item.append(" · ", awaySpan);
    if (remove && (p.role === "customer" || p.role === "technician")) {
      // Staff remove someone who came by a join link: the link stops working for good.
      // (A technician signed in as staff is refused by the server, which says why.)
      const button = document.createElement("button");
      button.type = "button";
      button.className = "danger";
      button.dataset.action = "remove-participant";
      button.textContent = t("Remove");
      button.setAttribute("aria-label", t("Remove {name} from the call", { name: p.name }));
      button.addEventListener("click", () => {
        if (confirm(t("Remove {name} from the call? Their link will stop working.",
          { name: p.name }))) {
          remove(p.id);
        }
      });
      item.append(" ", button);
    }
    return item;
  });
  if (!items.length) items.push(Object.assign(document.createElement("li"),
    { className: "empty", textContent: t("Nobody else yet.") }));
  region.replaceChildren(...items);
}

/** Each other participant's sound, played by an audio element of its own. */
export class Sounds {
  /** @param {HTMLElement} box where the audio elements go (#sounds) */
  constructor(box) {
    this.box = box;
    /** @type {Map<number, HTMLAudioElement>} */
    this.elements = new Map();
  }

  /** @param {number} id @param {MediaStream | null} stream what they send, if anything */
  play(id, stream) {
    const audio = stream ? stream.getAudioTracks() : [];
    let element = this.elements.get(id);
    if (!audio.length) {
      if (element) element.remove();
      this.elements.delete(id);
      return;
    }
    if (!element) {
      element = document.createElement("audio");
      element.autoplay = true;
      this.elements.set(id, element);
      this.box.append(element);
    }
    element.srcObject = new MediaStream(audio);
  }

  /** Silence everyone (the call ended). */
  clear() {
    for (const element of this.elements.values()) element.remove();
    this.elements.clear();
  }
}
