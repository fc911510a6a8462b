// The staff console's page: sign in and out, and the views that make it up, each in
// its module and holding its own state: the jobs list (console-jobs.js), a job's
// record (console-record.js, with its links and snapshots), the waiting customers
// (console-waiting.js), the live call (console-call.js) and its outcome
// (console-outcome.js), the addresses and tabs (console-router.js), and for admins the
// views of admin.js. The session token lives in page memory only (console-session.js):
// reloading the page signs out (and asks first while in a call).
import { AdminConsole } from "./admin.js";
import { setStatus } from "./api.js";
import { CallDesk } from "./console-call.js";
import { JobsList } from "./console-jobs.js";
import { Outcome } from "./console-outcome.js";
import { JobRecord } from "./console-record.js";
import { Router, VIEWS, routeOf } from "./console-router.js";
import { StaffSession } from "./console-session.js";
import { WaitingRoom } from "./console-waiting.js";
import { $ } from "./dom.js";
import { personLabel } from "./format.js";

// Each view is given what it uses. Where that is a view made after it (the views ask
// each other both ways: the record shows whether a call is on, the call reopens the
// record), it is given a function that asks that view when called, never before (the
// type of each view so asked is written out: it cannot be inferred around the circle).
const session = new StaffSession({ expired: (message) => signedOut(message) });
const { request } = session;
const admin = new AdminConsole({ request, setStatus });
const record = new JobRecord({
  request, setStatus, session,
  inCall: () => desk.call !== null,
  focusCall: (on) => desk.focus(on),
  showWaiting: () => waiting.show(),
  loadJobs: () => jobs.load(),
});
const outcome = new Outcome({ request, setStatus, record });
/** @type {JobsList} */
const jobs = new JobsList({
  request, setStatus, record,
  leaveFor: (job) => desk.leaveFor(job),
  showWaiting: () => waiting.show(),
});
/** @type {WaitingRoom} */
const waiting = new WaitingRoom({
  request, session, jobs, record,
  inCall: (job) => desk.call !== null && desk.call.job === job,
});
/** @type {CallDesk} */
const desk = new CallDesk({ session, record, waiting, outcome, setStatus, signedOut });
const router = new Router({ session, record, desk, admin, setStatus });

/** @param {string} message */
function signedOut(message) {
  session.end();  // first: the call's "ended" handler then asks nothing more
  desk.leave();
  desk.focus(false);
  record.clear();
  admin.stop();
  jobs.reset();
  waiting.stop();
  for (const name of VIEWS) $(`#${name}`).hidden = true;
  $("#job").hidden = true;
  outcome.hide();
  $("#tabs").hidden = true;
  $('[data-action="sign-out"]').hidden = true;
  $("#signin").hidden = false;
  $("#who").textContent = "";
  setStatus(message);
}

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.target);
  const data = new FormData(form);
  setStatus("Signing in…");
  /** @type {import("./console-session.js").Session} */
  let signedIn;
  try {
    signedIn = await session.signIn(String(data.get("username")), String(data.get("password")));
  } catch (error) {
    return setStatus(/** @type {Error} */ (error).message);
  }
  const { user } = signedIn;
  form.reset();
  $("#signin").hidden = true;
  // An older server (a node not yet upgraded) answers no name nor how it sends links.
  $("#who").textContent = personLabel({ name: user.name ?? user.username, role: user.role });
  record.invites.showSending(signedIn.sending ?? { email: null, sms: null });
  $('[data-action="sign-out"]').hidden = false;
  // Admins get the admin views; the server refuses their routes to anyone else anyway.
  $("#tabs").hidden = user.role !== "admin";
  if (user.role === "admin") admin.start(user);
  setStatus(`Signed in as ${user.username}`);
  // Where the address says (a reload signs out: this is where it was), else the jobs;
  // at a call's address, in the call again.
  await router.follow(routeOf(location.pathname), true);
  await jobs.load();
  waiting.poll();
});

$('[data-action="sign-out"]').addEventListener("click", () => signedOut("Signed out."));

// A page restored from the back-forward cache starts over, signed out.
addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });

signedOut("Sign in to continue.");
