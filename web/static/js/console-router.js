// The console's addresses and views: which view an address shows, the tabs that switch
// views, and Back and Forward (docs/ui.md, Addresses). No address holds a token or
// anything but a job's number: History keeps them.
import { $ } from "./dom.js";

/** Sections of the console, one shown at a time (the job's record goes with "jobs"). */
export const VIEWS = ["jobs", "people", "keys", "audit", "dashboard"];
/** Each view's address; a job's record is /jobs/ID, its call /jobs/ID/call. */
export const PATHS = /** @type {Record<string, string>} */ ({
  jobs: "/", people: "/people", keys: "/keys", audit: "/audit", dashboard: "/dashboard",
});

/**
 * @typedef {{view: string, job: number | null, call: boolean}} Route what an address
 *   shows: a view, the job whose record is open in it, and whether its call has the page
 *   to itself (/jobs/ID/call)
 */

/**
 * What an address shows.
 * @param {string} path
 * @returns {Route}
 */
export function routeOf(path) {
  const job = /^\/jobs\/(\d{1,15})(\/call)?$/.exec(path);
  if (job) return { view: "jobs", job: Number(job[1]), call: Boolean(job[2]) };
  return { view: VIEWS.find((view) => PATHS[view] === path) ?? "jobs", job: null, call: false };
}

/**
 * This view's address, as a new History entry (Back returns), unless it is there.
 * @param {string} path
 */
export function go(path) {
  if (location.pathname !== path) history.pushState(null, "", path);
}

export class Router {
  /**
   * @param {{session: import("./console-session.js").StaffSession,
   *   record: import("./console-record.js").JobRecord,
   *   desk: import("./console-call.js").CallDesk,
   *   admin: import("./admin.js").AdminConsole,
   *   setStatus: (text: string) => void}} options
   */
  constructor({ session, record, desk, admin, setStatus }) {
    this.session = session;
    this.record = record;
    this.desk = desk;
    this.admin = admin;
    this.setStatus = setStatus;
    /** @type {string | null} the view shown */
    this.shown = null;
    for (const tab of /** @type {NodeListOf<HTMLElement>} */ (
      document.querySelectorAll("#tabs [data-view]"))) {
      // The selector asks for a data-view: String() only tells the type checker so.
      tab.addEventListener("click", () => {
        const view = String(tab.dataset.view);
        this.show(view);
        go(view === "jobs" && record.current !== null ? `/jobs/${record.current}` : PATHS[view]);
      });
    }
    addEventListener("popstate", () => { this.follow(routeOf(location.pathname)); });
  }

  /**
   * Show one view of the console. The status line's words were about the view left:
   * another view starts with none.
   * @param {string} view
   */
  show(view) {
    if (this.shown !== null && view !== this.shown) this.setStatus("");
    this.shown = view;
    for (const name of VIEWS) $(`#${name}`).hidden = name !== view;
    $("#job").hidden = view !== "jobs" || this.record.current === null;
    for (const tab of document.querySelectorAll("#tabs [data-view]")) {
      tab.setAttribute("aria-pressed", String(/** @type {HTMLElement} */ (tab).dataset.view === view));
    }
    this.admin.show(view === "jobs" ? null : view);
  }

  /**
   * Show what an address names, signed in: its view (the jobs, for a view this user
   * may not see, and the address says so), its job's record, and the job's call on its
   * own. Back and Forward come here too: from a call's address, Back shows the record
   * with the call still in it, Forward the call again. A call's address joins the call
   * only on arrival (signed in at it: a reload, a new tab); Forward to a call that is
   * over shows the record.
   * @param {Route} route
   * @param {boolean} [arriving] just signed in at this address
   */
  async follow({ view, job, call: inCall }, arriving = false) {
    const { session, record, desk } = this;
    if (!session.user) return;
    desk.focus(inCall && desk.call !== null && desk.call.job === job);
    if (view !== "jobs" && session.user.role !== "admin") {
      view = "jobs";
      history.replaceState(null, "", PATHS.jobs);
    }
    this.show(view);
    if (view !== "jobs") return;
    if (job === null) {
      // The list alone, but for a job whose call this console is in: it stays below.
      if (!desk.call) record.close();
      return;
    }
    if (job === record.current) return;
    const from = desk.call;
    if (from && !desk.leaveFor(job)) {
      history.pushState(null, "", `/jobs/${from.job}`);  // still where the call is
      return;
    }
    try {
      await record.open(job);
    } catch (error) {
      this.setStatus(/** @type {Error} */ (error).message);
      if (location.pathname.startsWith(`/jobs/${job}`)) history.replaceState(null, "", PATHS.jobs);
      return;
    }
    if (!inCall || desk.call) return;
    const button = $('[data-action="join"]');
    if (arriving && record.current === job && !button.hidden) {
      button.click();
    } else if (location.pathname === `/jobs/${job}/call`) {
      history.replaceState(null, "", `/jobs/${job}`);  // the call is over: its record
    }
  }
}
