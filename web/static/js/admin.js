// The admin views of the console: people (admin-people.js, with who is in a call now,
// admin-live.js), API keys (admin-keys.js), the audit log (admin-audit.js) and the
// dashboard (admin-dashboard.js). Like the rest of the console, they keep everything in
// page memory and download nothing: exports are the API's and the CLI's (docs/ui.md).
import { AuditView } from "./admin-audit.js";
import { DashboardView } from "./admin-dashboard.js";
import { KeysView } from "./admin-keys.js";
import { LiveCalls } from "./admin-live.js";
import { PeopleView } from "./admin-people.js";
import { Generation } from "./admin-view.js";

export class AdminConsole {
  /**
   * @param {{request: import("./console-session.js").Request,
   *   setStatus: (text: string) => void}} options
   */
  constructor({ request, setStatus }) {
    this.setStatus = setStatus;
    /** Bumped whenever the view changes or the admin signs out: a late answer for an
     * older view is dropped, never shown, and starts no timer. */
    this.generation = new Generation();
    const context = { request, setStatus, generation: this.generation };
    this.people = new PeopleView({ ...context, loadLive: () => this.live.load() });
    this.live = new LiveCalls({ ...context, people: this.people });
    this.keys = new KeysView(context);
    this.audit = new AuditView(context);
    this.dashboard = new DashboardView(context);
  }

  /** @param {{id: number, username: string, role: string}} user the admin signed in */
  start(user) {
    this.people.me = user;
  }

  /** Signed out: forget everything shown. */
  stop() {
    this.generation.next();
    this.live.stop();
    for (const view of [this.people, this.live, this.keys, this.audit, this.dashboard]) {
      view.clear();
    }
    for (const form of document.querySelectorAll(".admin form")) {
      /** @type {HTMLFormElement} */ (form).reset();
    }
  }

  /** A view was opened (or left, with null): load what it shows. @param {string | null} view */
  async show(view) {
    const mine = this.generation.next();
    this.live.stop();
    try {
      if (view === "people") {
        await Promise.all([this.people.load(), this.live.load()]);
        if (mine !== this.generation.count) return;
        this.live.follow();
      } else if (view === "keys") {
        await this.keys.load();
      } else if (view === "audit") {
        await this.audit.load(false);
      } else if (view === "dashboard") {
        await this.dashboard.load();
      }
    } catch (error) {
      this.setStatus(/** @type {Error} */ (error).message);
    }
  }
}
