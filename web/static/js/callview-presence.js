// Who is in the call, as the call's screen last saw it: who is away (their connection
// lost, they may come back: docs/protocol.md, participant.away) and for how long, and
// who left lately. The away clocks ("disconnected, reconnecting 0:12") run once a
// second while anyone is away.
import { t } from "./i18n.js";

/** How long the expert reads "… left the call." where their picture was. */
const LEFT_NOTE_MS = 5000;

/** @typedef {import("./signalling.js").Participant} Participant */

export class Presence {
  /**
   * @param {HTMLElement} root the call section, whose away clocks
   *   (data-region="away", data-participant) are kept running
   * @param {() => void} changed what else to say again: once a second while anyone is
   *   away, and when "… left the call." is over
   */
  constructor(root, changed) {
    this.root = root;
    this.changed = changed;
    /** @type {Map<number, {name: string, since: number}>} who is away since when
     * (performance.now()): their connection was lost and they may come back */
    this.away = new Map();
    this.timer = 0;
    /** @type {{name: string, until: number} | null} who left lately */
    this.left = null;
    /** @type {Map<number, string> | null} who was in the call, by the last change seen */
    this.present = null;
  }

  /**
   * In the call on a new connection: everyone listed is new to it, none left; those
   * the list says are away have been since the server's clock says.
   * @param {Participant[]} participants
   */
  joined(participants) {
    this.away.clear();
    this.present = null;
    for (const p of participants) {
      if (typeof p.away_since !== "number") continue;
      // Away for how long by the server's clock, within its window: a client's clock
      // off by minutes cannot make the count run backwards or past the window.
      const window = typeof p.away_until === "number" ? p.away_until - p.away_since : 0;
      const already = Math.min(Math.max(0, Date.now() / 1000 - p.away_since), window);
      this.away.set(p.id, { name: p.name, since: performance.now() - already * 1000 });
    }
    this.clock();
  }

  /** The server saw their connection lost: away from now. @param {Participant} participant */
  wentAway(participant) {
    this.away.set(participant.id, { name: participant.name, since: performance.now() });
    this.clock();
  }

  /** @param {number} id */
  cameBack(id) {
    this.away.delete(id);
    this.clock();
  }

  /**
   * Who is in the call now (someone joined or left, or this client joined again).
   * @param {Map<number, string>} now their names, by id
   * @returns {{joined: string[], left: string[], gone: number[]}} the names of who
   *   joined and who left since the last change (who left only while someone is still
   *   there: alone, the note over the picture says it), and the ids of who left
   */
  seen(now) {
    /** @type {{joined: string[], left: string[], gone: number[]}} */
    const news = { joined: [], left: [], gone: [] };
    for (const [id, name] of this.present || []) {
      if (now.has(id)) continue;
      news.gone.push(id);
      this.away.delete(id);
      this.left = { name, until: performance.now() + LEFT_NOTE_MS };
      setTimeout(() => this.changed(), LEFT_NOTE_MS + 50);
    }
    if (this.present) {
      for (const [id, name] of now) if (!this.present.has(id)) news.joined.push(name);
      for (const [id, name] of this.present) {
        if (!now.has(id) && now.size) news.left.push(name);
      }
    }
    this.present = now;
    this.clock();
    return news;
  }

  /** The name of who left lately, while "… left the call." is to be read. */
  leftName() {
    if (this.left && performance.now() >= this.left.until) this.left = null;
    return this.left ? this.left.name : null;
  }

  /**
   * How long someone has been away ("disconnected, reconnecting 0:12"), or null if
   * they are not. @param {number} id
   */
  awayFor(id) {
    return this.away.has(id) ? this.words(id, false) : null;
  }

  /**
   * Why the expert sees no picture, if someone away is why: the one looked at, or
   * anyone when no picture is shown ("Anna disconnected, reconnecting 0:12").
   * @param {number | null} id whose camera the expert looks at
   * @param {boolean} shown whether a picture is shown
   * @returns {string | null}
   */
  awayNote(id, shown) {
    const awayId = id !== null && this.away.has(id) ? id
      : !shown && this.away.size ? [...this.away.keys()][0] : null;
    return awayId === null ? null : this.words(awayId, true);
  }

  /**
   * "Customer disconnected, reconnecting 0:12", from when they went away.
   * @param {number} id @param {boolean} named with their name first
   */
  words(id, named) {
    const away = this.away.get(id);
    if (!away) return "";
    const s = Math.max(0, Math.floor((performance.now() - away.since) / 1000));
    const clock = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    return named ? t("{name} disconnected, reconnecting {clock}", { name: away.name, clock })
      : t("disconnected, reconnecting {clock}", { clock });
  }

  /** Nobody away any more (the call ended). */
  clear() {
    this.away.clear();
    this.clock();
  }

  /** Keep the away clocks running, once a second, while anyone is away. */
  clock() {
    if (this.away.size && !this.timer) {
      this.timer = window.setInterval(() => this.tick(), 1000);
    } else if (!this.away.size && this.timer) {
      clearInterval(this.timer);
      this.timer = 0;
    }
  }

  tick() {
    for (const span of /** @type {NodeListOf<HTMLElement>} */ (
      this.root.querySelectorAll('[data-region="away"]'))) {
      span.textContent = this.words(Number(span.dataset.participant), false);
    }
    this.changed();
  }
}
