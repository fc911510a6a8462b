// The console's live call: joining the open job's call, the call on a page of its own
// (/jobs/ID/call) or in the job's record, and what follows its end (docs/ui.md).
import { Call, openCamera } from "./call.js";
import { CallView } from "./callview.js";
import { go } from "./console-router.js";
import { $ } from "./dom.js";

/** @typedef {import("./console-session.js").Session} Session */

/** Close reasons after which this session is no good: sign out (docs/protocol.md). */
const SIGNED_OUT = new Set(["account_disabled", "signed_out", "session_expired", "unauthorized"]);

export class CallDesk {
  /**
   * @param {{session: import("./console-session.js").StaffSession,
   *   record: import("./console-record.js").JobRecord,
   *   waiting: import("./console-waiting.js").WaitingRoom,
   *   outcome: import("./console-outcome.js").Outcome,
   *   setStatus: (text: string) => void, signedOut: (message: string) => void}} options
   */
  constructor({ session, record, waiting, outcome, setStatus, signedOut }) {
    this.session = session;
    this.setStatus = setStatus;
    this.record = record;
    this.waiting = waiting;
    this.outcome = outcome;
    this.signedOut = signedOut;
    /** @type {Call | null} the live call this console is in */
    this.call = null;
    /** The call section as the page came, copied afresh for each call (no old listeners). */
    this.pristine = /** @type {HTMLElement} */ ($("#call").cloneNode(true));

    $('[data-action="join"]').addEventListener("click", () => this.join());
    $('[data-action="call-focus"]').addEventListener("click", () => {
      if (!this.call) return;
      go(`/jobs/${this.call.job}/call`);
      this.focus(true);
      $("#call").scrollIntoView({ block: "start" });
    });
    $('[data-action="call-record"]').addEventListener("click", () => {
      if (!this.call) return;
      go(`/jobs/${this.call.job}`);
      this.focus(false);
    });
    // A reload signs out (the session token is in this page's memory only, never on the
    // device): in a call, the browser asks first. Going on anyway does not leave the call
    // on purpose: the camera and the connections stop, and the server keeps the expert's
    // participant for a while, so that signing in again and joining takes its place
    // (docs/security.md, Coming back after a reload).
    addEventListener("beforeunload", (event) => {
      if (!this.call) return;
      event.preventDefault();
      event.returnValue = "";  // older browsers ask only with this set
    });
    // Nothing stays behind: let go of the call when the page goes.
    addEventListener("pagehide", () => { if (this.call) this.call.suspend(); });
  }

  /**
   * The call on its own, or in the job's page: at /jobs/ID/call the page holds nothing but
   * the picture, its tools, who is in the call, its chat and the job's snapshots (app.css,
   * body.desk-call); at /jobs/ID the whole record, the call in it.
   * @param {boolean} on
   */
  focus(on) {
    const { call } = this;
    const focused = on && call !== null;
    document.body.classList.toggle("desk-call", focused);
    $('[data-action="call-focus"]').hidden = focused || call === null
      || call.job !== this.record.current;
    $('[data-action="call-record"]').hidden = !focused;
  }

  /**
   * Leave the call, if it is another job's, to open `job`; unless the user would rather
   * stay in it: then false.
   * @param {number} job
   */
  leaveFor(job) {
    if (this.call && this.call.job !== job) {
      if (!confirm("Leave the call to open another job?")) return false;
      this.call.leave();
    }
    return true;
  }

  /** Leave the call, if in one (signing out). */
  leave() {
    if (this.call) this.call.leave();
  }

  /** Join the open job's call. */
  async join() {
    const { session, record, waiting } = this;
    if (record.current === null || !session.user || this.call) return;
    const job = record.current;
    $('[data-action="join"]').hidden = true;
    this.setStatus("Starting the camera…");
    const { stream, problem, cameras } = await openCamera();
    // Read once the camera is open: signed out meanwhile, no call starts, and the
    // camera and microphone just opened are let go.
    if (session.current === null) {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    const section = /** @type {HTMLElement} */ (this.pristine.cloneNode(true));
    $("#call").replaceWith(section);
    const { token, user: { role } } = /** @type {Session} */ (session.current);
    const call = new Call({ token, job, stream, cameras, notice: problem });
    this.call = call;
    waiting.show();
    const live = new CallView(section, call, {
      // A technician on site shows their own camera; an expert looks at the others'.
      layout: role === "technician" ? "field" : "expert", staff: true,
    });
    call.addEventListener("joined", () => {
      waiting.poll();  // no longer waiting for staff: say so now, not at the next poll
      section.hidden = false;
      // The call has the page to itself, at its own address; the record is Back.
      if (record.current === job && !document.body.classList.contains("desk-call")) {
        go(`/jobs/${job}/call`);
        this.focus(true);
      }
      section.scrollIntoView({ block: "start" });
    });
    live.addEventListener("snapshot", () => {
      if (record.current === job) record.open(job);
    });
    call.addEventListener("note.added", () => {
      if (record.current === job) record.open(job);
    });
    call.addEventListener("state", (event) => {
      const { state, text, reason } = /** @type {CustomEvent} */ (event).detail;
      if (state !== "ended") return;
      this.call = null;
      this.focus(false);
      if (location.pathname === `/jobs/${job}/call`) history.replaceState(null, "", `/jobs/${job}`);
      waiting.show();
      section.hidden = true;
      if (SIGNED_OUT.has(reason)) {
        this.signedOut(text);
        return;
      }
      // The expert says whether the problem was fixed, for the first-time-fix rate.
      const user = session.user;
      if (call.joined && user && user.role !== "technician" && reason !== "replaced") {
        this.outcome.ask(call.joined.call.id);
      }
      if (record.current === job && session.user) record.open(job);
    });
    call.start();
  }
}
