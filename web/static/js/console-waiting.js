// Which customers wait for staff: the console asks the server every few seconds, marks
// those jobs, says how many in the tab's title, and chimes for a new one when the sound
// is on (docs/ui.md, data-region="waiting").
import { $, el } from "./dom.js";

/** How often the console asks which customers wait: often while it is looked at; less
 * often in a background tab, where the tab title and the sound are what tell. */
const WAITING_POLL_MS = 3000;
const WAITING_POLL_HIDDEN_MS = 10000;

export class WaitingRoom {
  /**
   * @param {{request: import("./console-session.js").Request,
   *   session: import("./console-session.js").StaffSession,
   *   jobs: import("./console-jobs.js").JobsList,
   *   record: import("./console-record.js").JobRecord,
   *   inCall: (job: number) => boolean}} options `inCall`: whether this console is in
   *   that job's call
   */
  constructor({ request, session, jobs, record, inCall }) {
    this.request = request;
    this.session = session;
    this.jobs = jobs;
    this.record = record;
    this.inCall = inCall;
    /** The page's own title, before any "(1) Customer waiting — ". */
    this.baseTitle = document.title;
    /** @type {Map<number, number>} the jobs whose customer waits for staff, and since when */
    this.waiting = new Map();
    this.timer = 0;
    /** Counts polls: only the newest one's answer is shown and schedules the next. */
    this.polls = 0;
    /** @type {AudioContext | null} made when the sound is switched on (a click allows it) */
    this.chime = null;

    $('[data-action="waiting-sound"]', HTMLInputElement).addEventListener("change", (event) => {
      const on = /** @type {HTMLInputElement} */ (event.target).checked;
      // Made and resumed in the click that switches it on, so the browser lets it play.
      if (on && !this.chime) this.chime = new AudioContext();
      if (this.chime) (on ? this.chime.resume() : this.chime.suspend()).catch(() => {});
      if (on) this.ring();  // what it will sound like
    });
    addEventListener("online", () => { if (session.user && this.timer) this.poll(); });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && session.user && this.timer) this.poll();
    });
  }

  /**
   * Ask which jobs have a customer waiting for staff (docs/api.md, waiting_since), show
   * it, chime for any new one when the sound is on, and ask again in a while.
   */
  async poll() {
    clearTimeout(this.timer);
    this.timer = 0;
    const mine = ++this.polls;
    if (!this.session.user) return;
    // Offline, there is nobody to ask (and each try would be an error in the console):
    // the "online" event asks again at once.
    if (navigator.onLine) {
      try {
        /** @type {{jobs: import("./console-jobs.js").Job[]}} */
        const { jobs } = await this.request("/api/jobs?status=open&limit=500");
        if (!this.session.user || mine !== this.polls) return;
        const before = this.waiting;
        this.waiting = new Map(jobs.filter((j) => typeof j.waiting_since === "number")
          .map((j) => [j.id, /** @type {number} */ (j.waiting_since)]));
        // New jobs, by others too, unless the list answers a search of its own.
        if (!this.jobs.query && this.jobs.status === "open") {
          this.jobs.show(jobs.slice(0, 100), "", "open");
        } else {
          this.show();
        }
        if ([...this.waiting.keys()].some((id) => !before.has(id))) this.ring();
      } catch {
        // Not reachable for now (the status line says why when it matters): ask again.
      }
    }
    if (!this.session.user || mine !== this.polls) return;
    this.timer = window.setTimeout(() => this.poll(),
      document.visibilityState === "visible" ? WAITING_POLL_MS : WAITING_POLL_HIDDEN_MS);
  }

  /** Signed out: ask no more, and show nobody waiting. */
  stop() {
    this.polls += 1;
    clearTimeout(this.timer);
    this.timer = 0;
    this.waiting = new Map();
    this.show();
  }

  /** "Customer is waiting" on each such job, on the open job, and in the tab's title. */
  show() {
    const { waiting } = this;
    for (const item of /** @type {NodeListOf<HTMLElement>} */ (
      document.querySelectorAll('[data-region="jobs"] li[data-job]'))) {
      const waits = waiting.has(Number(item.dataset.job));
      let badge = item.querySelector('[data-region="waiting"]');
      if (waits && !badge) {
        badge = el("span", "Customer is waiting", "waiting");
        badge.setAttribute("data-region", "waiting");
        item.append(badge);
      } else if (!waits && badge) {
        badge.remove();
      }
    }
    const job = this.record.current;
    const here = job !== null && waiting.has(job) && !this.inCall(job);
    $('[data-region="job-waiting"]').hidden = !here;
    document.title = waiting.size
      ? `(${waiting.size}) Customer waiting — ${this.baseTitle}` : this.baseTitle;
  }

  /** A short two-tone chime, when the sound is on. */
  ring() {
    const { chime } = this;
    if (!chime || chime.state !== "running") return;
    const start = chime.currentTime;
    for (const [i, hz] of [880, 660].entries()) {
      const tone = chime.createOscillator();
      const gain = chime.createGain();
      tone.frequency.value = hz;
      gain.gain.setValueAtTime(0.2, start + i * 0.2);
      gain.gain.exponentialRampToValueAtTime(0.001, start + i * 0.2 + 0.18);
      tone.connect(gain).connect(chime.destination);
      tone.start(start + i * 0.2);
      tone.stop(start + i * 0.2 + 0.2);
    }
  }
}
