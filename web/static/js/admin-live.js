// The people view's live calls: who is in a call now, asked again every two seconds
// while the view is shown; the accounts' states follow (docs/ui.md, Admin views).
import { AdminView } from "./admin-view.js";
import { $, el } from "./dom.js";
import { personLabel } from "./format.js";

// The calls of GET /api/calls/live (docs/api.md).
/**
 * @typedef {{id: number, name: string, role: string, joined_at: number,
 *   user_id: number | null, media: boolean}} LiveParticipant
 * @typedef {{call_id: number, job: {id: number, title: string},
 *   participants: LiveParticipant[]}} LiveCall
 */

const LIVE_REFRESH_MS = 2000;

export class LiveCalls extends AdminView {
  /**
   * @param {import("./admin-view.js").AdminContext &
   *   {people: import("./admin-people.js").PeopleView}} context `people`: the accounts,
   *   whose states follow
   */
  constructor(context) {
    super(context);
    this.people = context.people;
    this.timer = 0;
    $('[data-action="live-refresh"]').addEventListener("click",
      () => this.attempt(() => this.load()));
  }

  /** Ask again every while, until stopped. */
  follow() {
    this.timer = setInterval(() => this.load().catch(() => {}), LIVE_REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
  }

  /** Signed out: forget what was shown. */
  clear() {
    this.region("live-calls").replaceChildren();
  }

  async load() {
    const [live, listed] = await Promise.all([
      this.fetch("/api/calls/live"), this.fetch("/api/users")]);
    if (!live || !listed) return;
    /** @type {{calls: LiveCall[]}} */
    const { calls } = live;
    /** @type {{users: import("./admin-people.js").User[]}} */
    const { users } = listed;
    this.people.follow(users, new Set(calls.flatMap((c) => c.participants.map((p) => p.user_id))));
    const region = this.region("live-calls");
    if (!calls.length) {
      region.replaceChildren(el("li", "Nobody is in a call.", "empty"));
      return;
    }
    region.replaceChildren(...calls.map((call) => {
      const item = el("li", `${call.job.title} · call ${call.call_id}`);
      item.dataset.call = String(call.call_id);
      const people = el("ul", "", "people");
      people.append(...call.participants.map((p) => {
        const person = el("li", `${personLabel(p)} since ` +
          `${new Date(p.joined_at * 1000).toLocaleTimeString()}` +
          (p.media ? "" : " · no media yet"));
        person.dataset.participant = String(p.id);
        if (p.user_id !== null) person.dataset.user = String(p.user_id);
        return person;
      }));
      item.append(people);
      return item;
    }));
  }
}
