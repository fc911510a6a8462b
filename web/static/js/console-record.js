// A job's record in the console: its calls, chat, notes, timeline, snapshots and
// links, with the forms that add to it (a note, closing the job). Each record shown is
// counted: an answer for an older one is dropped, never shown.
import { Invites } from "./console-invites.js";
import { Snapshots } from "./console-snapshots.js";
import { $, el } from "./dom.js";
import { duration, eventText, personLabel, timeOfDay, when } from "./format.js";

// The answer of GET /api/jobs/{id} (docs/api.md).
/**
 * @typedef {import("./console-snapshots.js").Person} Person
 * @typedef {{name: string, role: string, joined_at: number, left_at: number | null,
 *   duration_s: number | null}} CallParticipant
 * @typedef {{started_at: number, duration_s: number | null, first_time_fix: boolean | null,
 *   participants: CallParticipant[]}} JobCall
 * @typedef {import("./console-jobs.js").Job & {calls: JobCall[],
 *   events: import("./format.js").JobEvent[],
 *   messages: {from: Person, text: string, created_at: number}[],
 *   notes: import("./signalling.js").Note[],
 *   snapshots: import("./console-snapshots.js").Snapshot[]}} RecordAnswer
 */

/** A call's or a presence's length; null while it lasts. @param {number | null} s */
const lasted = (s) => (s === null ? "in progress" : duration(s));

/** The parts of the record that show what was, emptied when signing out. */
const REGIONS = ["calls", "messages", "notes", "events", "snapshots"];

export class JobRecord {
  /**
   * @param {{request: import("./console-session.js").Request,
   *   setStatus: (text: string) => void,
   *   session: import("./console-session.js").StaffSession,
   *   inCall: () => boolean, focusCall: (on: boolean) => void,
   *   showWaiting: () => void, loadJobs: () => Promise<void>}} options
   *   `inCall`: whether this console is in a call; `focusCall`: the call on its own page
   *   or in the record; `showWaiting`: mark the jobs whose customer waits; `loadJobs`:
   *   list the jobs again
   */
  constructor({ request, setStatus, session, inCall, focusCall, showWaiting, loadJobs }) {
    this.request = request;
    this.setStatus = setStatus;
    this.session = session;
    this.inCall = inCall;
    this.focusCall = focusCall;
    this.showWaiting = showWaiting;
    /** @type {number | null} the job whose record is shown */
    this.current = null;
    /** Counts records shown: an answer for an older one is dropped, not shown. */
    this.views = 0;
    this.snapshots = new Snapshots({ request, setStatus });
    this.invites = new Invites({ request, setStatus, record: this });

    $("#note-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = /** @type {HTMLFormElement} */ (event.target);
      if (this.current === null) return;
      try {
        await request(`/api/jobs/${this.current}/notes`, {
          method: "POST", body: { text: new FormData(form).get("text") },
        });
        form.reset();
        await this.open(this.current);
      } catch (error) {
        setStatus(/** @type {Error} */ (error).message);
      }
    });
    $('[data-action="job-close"]').addEventListener("click", async () => {
      if (this.current === null) return;
      if (!confirm("Close this job? Its links stop working and a call in progress ends.")) return;
      try {
        await request(`/api/jobs/${this.current}/close`, { method: "POST" });
        setStatus("Job closed");
        await this.open(this.current);
        await loadJobs();
      } catch (error) {
        setStatus(/** @type {Error} */ (error).message);
      }
    });
  }

  /** Show a job's record. @param {number} id */
  async open(id) {
    const mine = ++this.views;
    /** @type {RecordAnswer} */
    const job = await this.request(`/api/jobs/${id}`);
    // Another job was opened meanwhile, or the user signed out (that counts a view too).
    const { current: session } = this.session;
    if (mine !== this.views || !session) return;
    this.current = id;
    $("#job").hidden = $("#jobs").hidden;  // shown with the jobs view only
    $("#job-heading").textContent = job.status === "closed" ? `${job.title} (closed)` : job.title;
    const closed = job.status === "closed";
    $('[data-action="job-close"]', HTMLButtonElement).disabled = closed;
    $('[data-action="join"]').hidden = closed || this.inCall();
    this.focusCall(document.body.classList.contains("desk-call"));
    this.invites.reset(closed);
    this.showWaiting();
    $('[data-region="calls"]').replaceChildren(...job.calls.map((c) => {
      const outcome = c.first_time_fix === null ? ""
        : c.first_time_fix ? " · fixed on this visit" : " · not fixed on this visit";
      const item = el("li", `${when(c.started_at)} · ${lasted(c.duration_s)}${outcome}`);
      const people = el("ul", "", "people");
      people.append(...c.participants.map((p) => el("li",
        `${personLabel(p)} joined ${timeOfDay(p.joined_at)}` +
        (p.left_at === null ? ", still in" : `, left after ${lasted(p.duration_s)}`))));
      item.append(people);
      return item;
    }));
    $('[data-region="messages"]').replaceChildren(...job.messages.map((m) =>
      el("p", `${timeOfDay(m.created_at)} ${m.from.name}: ${m.text}`)));
    $('[data-region="notes"]').replaceChildren(...job.notes.map((n) =>
      el("li", `${when(n.created_at)} · ${n.author}: ${n.text}`)));
    $('[data-region="events"]').replaceChildren(...job.events.map((e) =>
      el("li", `${when(e.created_at)} · ${eventText(e)}`)));
    this.snapshots.show(job.snapshots, () => mine === this.views, session.token);
    await this.invites.show(mine);
  }

  /** No job's record on screen. */
  close() {
    this.current = null;
    this.views += 1;  // one still loading is dropped
    $("#job").hidden = true;
    this.showWaiting();
  }

  /** Signed out: nothing of the last user's records stays, shown or loading. */
  clear() {
    this.current = null;
    this.views += 1;  // a record still loading is dropped, not shown to the next user
    this.snapshots.forget();
    for (const region of REGIONS) $(`[data-region="${region}"]`).replaceChildren();
    this.invites.clear();
  }
}
