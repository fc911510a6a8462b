// The jobs list: the new-job form, the search, and the jobs found, each opening its
// record (docs/ui.md, data-region="jobs").
import { go } from "./console-router.js";
import { $, el } from "./dom.js";

// The jobs of GET /api/jobs (docs/api.md).
/**
 * @typedef {{id: number, title: string, external_ref: string | null, status: string,
 *   waiting_since?: number | null}} Job
 */

/** What a jobs list holds, in words (an "s" added for many): by the status asked. */
const WHICH = /** @type {Record<string, string>} */ ({ open: "open job", closed: "closed job" });

export class JobsList {
  /**
   * @param {{request: import("./console-session.js").Request,
   *   setStatus: (text: string) => void,
   *   record: import("./console-record.js").JobRecord,
   *   leaveFor: (job: number) => boolean, showWaiting: () => void}} options
   *   `leaveFor`: leave the call, if another job's, unless the user would rather stay
   *   (then false); `showWaiting`: mark the jobs whose customer waits
   */
  constructor({ request, setStatus, record, leaveFor, showWaiting }) {
    this.request = request;
    this.setStatus = setStatus;
    this.record = record;
    this.leaveFor = leaveFor;
    this.showWaiting = showWaiting;
    /** The search the list shows ("" for all), and which jobs: "open", "closed" or ""
     * for all. */
    this.query = "";
    this.status = "open";
    /** What the list shows, to redraw it only when that changes. */
    this.shown = "";

    $("#job-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = /** @type {HTMLFormElement} */ (event.target);
      const data = new FormData(form);
      try {
        const job = await request("/api/jobs", {
          method: "POST",
          body: { title: data.get("title"), external_ref: data.get("external_ref") || undefined },
        });
        form.reset();
        await this.load();
        await record.open(job.id);
        go(`/jobs/${job.id}`);
        setStatus(`Created job ${job.title}`);
      } catch (error) {
        setStatus(/** @type {Error} */ (error).message);
      }
    });
    $("#search-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = new FormData(/** @type {HTMLFormElement} */ (event.target));
      try {
        await this.load(String(form.get("q") || "").trim(), String(form.get("status") ?? "open"));
      } catch (error) {
        setStatus(/** @type {Error} */ (error).message);
      }
    });
    // Choosing which jobs to list searches at once.
    $('[data-action="job-filter"]').addEventListener("change", () => {
      $("#search-form", HTMLFormElement).requestSubmit();
    });
  }

  /** Show the jobs that answer a search; by default the last one asked. */
  async load(query = this.query, status = this.status) {
    this.query = query;
    this.status = status;
    const filter = new URLSearchParams();
    if (status) filter.set("status", status);
    if (query) filter.set("q", query);
    /** @type {{jobs: Job[]}} */
    const { jobs } = await this.request(`/api/jobs?${filter}`);
    this.show(jobs, query, status);
  }

  /** Signed out: the open jobs, unsearched, for the next user. */
  reset() {
    this.shown = "";
    this.query = "";
    this.status = "open";
    $("#search-form", HTMLFormElement).reset();  // the form says what the list shows
  }

  /**
   * Draw the jobs list, unless it already shows these jobs; then mark who waits.
   * @param {Job[]} jobs @param {string} query the search they answer
   * @param {string} status which jobs: "open", "closed" or "" for all
   */
  show(jobs, query, status) {
    const shown = JSON.stringify([query, status,
      jobs.map((j) => [j.id, j.title, j.external_ref, j.status])]);
    if (shown === this.shown) return this.showWaiting();
    this.shown = shown;
    if (!jobs.length) {
      const which = WHICH[status] ?? "job";
      $('[data-region="jobs"]').replaceChildren(
        el("li", query ? `No ${which} matches "${query}".` : `No ${which}s yet.`, "empty"));
      return this.showWaiting();
    }
    $('[data-region="jobs"]').replaceChildren(...jobs.map((job) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "job";
      button.dataset.job = String(job.id);
      button.textContent = job.external_ref ? `${job.title} · ${job.external_ref}` : job.title;
      if (job.status === "closed") button.append(" ", el("span", "closed", "tag"));
      button.addEventListener("click", async () => {
        if (!this.leaveFor(job.id)) return;
        try {
          await this.record.open(job.id);
          go(`/jobs/${job.id}`);
        } catch (error) {
          this.setStatus(/** @type {Error} */ (error).message);
        }
      });
      item.dataset.job = String(job.id);
      item.append(button);
      return item;
    }));
    this.showWaiting();
  }
}
