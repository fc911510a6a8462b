// The staff console: sign in, jobs, invites, and a job's record (calls, snapshots,
// chat, notes, timeline); for admins, the views of admin.js. The session token lives
// in this module's memory only; reloading the page signs out (and asks first while in
// a call). Snapshot images are fetched with the token and shown
// from object URLs that are revoked when the job view changes: nothing is cached.
import { AdminConsole } from "./admin.js";
import { api, apiBlob, ApiError, setStatus } from "./api.js";
import { Call, openCamera } from "./call.js";
import { CallView } from "./callview.js";
import { $ } from "./dom.js";
import { duration, eventText, personLabel, roleWord, timeOfDay, when } from "./format.js";

// The answers of docs/api.md this page reads.
/**
 * @typedef {{id: number, username: string, role: string, name?: string}} User
 * @typedef {{email: string | null, sms: string | null}} Sending how links are sent
 * @typedef {{id: number, role: string, name: string | null, sent_to: string | null,
 *   state: "open" | "used" | "expired" | "withdrawn", created_at: number,
 *   expires_at: number, used_at: number | null, revoked_at: number | null,
 *   created_by: string | null}} Invite a job's join link, as listed
 * @typedef {{token: string, expires_at: number, user: User, sending: Sending}} Session
 * @typedef {{id: number, title: string, external_ref: string | null, status: string,
 *   waiting_since?: number | null}} Job
 * @typedef {{name: string, role: string, joined_at: number, left_at: number | null,
 *   duration_s: number | null}} CallParticipant
 * @typedef {{started_at: number, duration_s: number | null, first_time_fix: boolean | null,
 *   participants: CallParticipant[]}} JobCall
 * @typedef {{name: string, role: string}} Person
 * @typedef {{id: number, original_id: number | null, version: number, author: Person,
 *   camera: Person, captured_at: number, width: number, height: number,
 *   caption: string | null, image_url: string}} Snapshot
 * @typedef {Job & {calls: JobCall[], events: import("./format.js").JobEvent[],
 *   messages: {from: Person, text: string, created_at: number}[],
 *   notes: import("./signalling.js").Note[], snapshots: Snapshot[]}} JobRecord
 */

/** @type {Session | null} */
let session = null;
/** @type {number | null} */
let currentJob = null;
/** @type {string[]} object URLs of the images shown, revoked on the next render */
let shownImages = [];
/** Counts job views: an answer for an older view is dropped, not shown. */
let jobViews = 0;
/** @type {Call | null} the live call this console is in */
let call = null;
/** @type {number | null} the call whose outcome the expert is asked for */
let outcomeCall = null;

/** The call section as the page came, copied afresh for each call (no old listeners). */
const pristineCall = /** @type {HTMLElement} */ ($("#call").cloneNode(true));

/** The page's own title, before any "(1) Customer waiting — ". */
const baseTitle = document.title;
/** How often the console asks which customers wait: often while it is looked at; less
 * often in a background tab, where the tab title and the sound are what tell. */
const WAITING_POLL_MS = 3000;
const WAITING_POLL_HIDDEN_MS = 10000;
/** @type {Map<number, number>} the jobs whose customer waits for staff, and since when */
let waiting = new Map();
let waitingTimer = 0;
/** Counts polls: only the newest one's answer is shown and schedules the next. */
let waitingPolls = 0;
/** The search the jobs list shows ("" for all), and which jobs: "open", "closed" or
 * "" for all. */
let jobsQuery = "";
let jobsStatus = "open";
/** What the jobs list shows, to redraw it only when that changes. */
let jobsShown = "";
/** @type {AudioContext | null} made when the sound is switched on (a click allows it) */
let chime = null;

/** Sections of the console, one shown at a time (the job's record goes with "jobs"). */
const VIEWS = ["jobs", "people", "keys", "audit", "dashboard"];
/** Each view's address (docs/ui.md, Addresses); a job's record is /jobs/ID, its call
 * /jobs/ID/call. None holds a token or anything but a job's number: History keeps them. */
const PATHS = /** @type {Record<string, string>} */ ({
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
function routeOf(path) {
  const job = /^\/jobs\/(\d{1,15})(\/call)?$/.exec(path);
  if (job) return { view: "jobs", job: Number(job[1]), call: Boolean(job[2]) };
  return { view: VIEWS.find((view) => PATHS[view] === path) ?? "jobs", job: null, call: false };
}

/**
 * The call on its own, or in the job's page: at /jobs/ID/call the page holds nothing but
 * the picture, its tools, who is in the call, its chat and the job's snapshots (app.css,
 * body.desk-call); at /jobs/ID the whole record, the call in it.
 * @param {boolean} on
 */
function focusCall(on) {
  const focused = on && call !== null;
  document.body.classList.toggle("desk-call", focused);
  $('[data-action="call-focus"]').hidden = focused || call === null || call.job !== currentJob;
  $('[data-action="call-record"]').hidden = !focused;
}

/**
 * This view's address, as a new History entry (Back returns), unless it is there.
 * @param {string} path
 */
function go(path) {
  if (location.pathname !== path) history.pushState(null, "", path);
}

/** @param {string} message */
function signedOut(message) {
  session = null;  // first: the call's "ended" handler then asks nothing more
  if (call) call.leave();
  focusCall(false);
  currentJob = null;
  jobViews += 1;  // a job record still loading is dropped, not shown to the next user
  for (const url of shownImages) URL.revokeObjectURL(url);
  shownImages = [];
  for (const region of ["calls", "messages", "notes", "events", "snapshots", "invite-link",
    "invites"]) {
    $(`[data-region="${region}"]`).replaceChildren();
  }
  $('[data-action="copy-invite"]').hidden = true;
  showQr(null);  // the link in it is the last user's
  admin.stop();
  stopWaiting();
  for (const name of VIEWS) $(`#${name}`).hidden = true;
  $("#job").hidden = true;
  $("#outcome").hidden = true;
  $("#tabs").hidden = true;
  $('[data-action="sign-out"]').hidden = true;
  $("#signin").hidden = false;
  $("#who").textContent = "";
  setStatus(message);
}

/** Show one view of the console. @param {string} view */
function showView(view) {
  for (const name of VIEWS) $(`#${name}`).hidden = name !== view;
  $("#job").hidden = view !== "jobs" || currentJob === null;
  for (const tab of document.querySelectorAll("#tabs [data-view]")) {
    tab.setAttribute("aria-pressed", String(/** @type {HTMLElement} */ (tab).dataset.view === view));
  }
  admin.show(view === "jobs" ? null : view);
}

/**
 * Call the API as the user signed in; signs out when the server says the session is over.
 * @param {string} path
 * @param {{method?: string, body?: object}} [options]
 * @returns {Promise<any>}
 */
async function request(path, options = {}) {
  try {
    return await api(path, { ...options, token: session ? session.token : undefined });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && session) {
      signedOut("You have been signed out.");
    }
    throw error;
  }
}

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.target);
  const data = new FormData(form);
  setStatus("Signing in…");
  /** @type {Session} */
  let signedIn;
  try {
    signedIn = await api("/api/session", {
      method: "POST",
      body: { username: data.get("username"), password: data.get("password") },
    });
  } catch (error) {
    return setStatus(/** @type {Error} */ (error).message);
  }
  session = signedIn;
  const { user } = signedIn;
  form.reset();
  $("#signin").hidden = true;
  // An older server (a node not yet upgraded) answers no name nor how it sends links.
  $("#who").textContent = personLabel({ name: user.name ?? user.username, role: user.role });
  showSending(signedIn.sending ?? { email: null, sms: null });
  $('[data-action="sign-out"]').hidden = false;
  // Admins get the admin views; the server refuses their routes to anyone else anyway.
  $("#tabs").hidden = user.role !== "admin";
  if (user.role === "admin") admin.start(user);
  setStatus(`Signed in as ${user.username}`);
  // Where the address says (a reload signs out: this is where it was), else the jobs;
  // at a call's address, in the call again.
  await follow(routeOf(location.pathname), true);
  await loadJobs();
  pollWaiting();
});

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
async function follow({ view, job, call: inCall }, arriving = false) {
  if (!session) return;
  focusCall(inCall && call !== null && call.job === job);
  if (view !== "jobs" && session.user.role !== "admin") {
    view = "jobs";
    history.replaceState(null, "", PATHS.jobs);
  }
  showView(view);
  if (view !== "jobs") return;
  if (job === null) {
    // The list alone, but for a job whose call this console is in: it stays below.
    if (!call) closeJobView();
    return;
  }
  if (job === currentJob) return;
  if (call && call.job !== job) {
    if (!confirm("Leave the call to open another job?")) {
      history.pushState(null, "", `/jobs/${call.job}`);  // still where the call is
      return;
    }
    call.leave();
  }
  try {
    await openJob(job);
  } catch (error) {
    setStatus(/** @type {Error} */ (error).message);
    if (location.pathname.startsWith(`/jobs/${job}`)) history.replaceState(null, "", PATHS.jobs);
    return;
  }
  if (!inCall || call) return;
  const button = $('[data-action="join"]');
  if (arriving && currentJob === job && !button.hidden) {
    button.click();
  } else if (location.pathname === `/jobs/${job}/call`) {
    history.replaceState(null, "", `/jobs/${job}`);  // the call is over: its record
  }
}

addEventListener("popstate", () => { follow(routeOf(location.pathname)); });

/** No job's record on screen. */
function closeJobView() {
  currentJob = null;
  jobViews += 1;  // one still loading is dropped
  $("#job").hidden = true;
  showWaiting();
}

for (const tab of /** @type {NodeListOf<HTMLElement>} */ (
  document.querySelectorAll("#tabs [data-view]"))) {
  // The selector asks for a data-view: String() only tells the type checker so.
  tab.addEventListener("click", () => {
    const view = String(tab.dataset.view);
    showView(view);
    go(view === "jobs" && currentJob !== null ? `/jobs/${currentJob}` : PATHS[view]);
  });
}

$('[data-action="sign-out"]').addEventListener("click", () => signedOut("Signed out."));

/** Show the jobs that answer a search; by default the last one asked. */
async function loadJobs(query = jobsQuery, status = jobsStatus) {
  jobsQuery = query;
  jobsStatus = status;
  const filter = new URLSearchParams();
  if (status) filter.set("status", status);
  if (query) filter.set("q", query);
  /** @type {{jobs: Job[]}} */
  const { jobs } = await request(`/api/jobs?${filter}`);
  showJobs(jobs, query, status);
}

/** What a jobs list holds, in words (an "s" added for many): by the status asked. */
const WHICH = /** @type {Record<string, string>} */ ({ open: "open job", closed: "closed job" });

/**
 * Draw the jobs list, unless it already shows these jobs; then mark who waits.
 * @param {Job[]} jobs @param {string} query the search they answer
 * @param {string} status which jobs: "open", "closed" or "" for all
 */
function showJobs(jobs, query, status) {
  const shown = JSON.stringify([query, status,
    jobs.map((j) => [j.id, j.title, j.external_ref, j.status])]);
  if (shown === jobsShown) return showWaiting();
  jobsShown = shown;
  if (!jobs.length) {
    const which = WHICH[status] ?? "job";
    $('[data-region="jobs"]').replaceChildren(
      el("li", query ? `No ${which} matches "${query}".` : `No ${which}s yet.`, "empty"));
    return showWaiting();
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
      if (call && call.job !== job.id) {
        if (!confirm("Leave the call to open another job?")) return;
        call.leave();
      }
      try {
        await openJob(job.id);
        go(`/jobs/${job.id}`);
      } catch (error) {
        setStatus(/** @type {Error} */ (error).message);
      }
    });
    item.dataset.job = String(job.id);
    item.append(button);
    return item;
  }));
  showWaiting();
}

/**
 * Ask which jobs have a customer waiting for staff (docs/api.md, waiting_since), show
 * it, chime for any new one when the sound is on, and ask again in a while.
 */
async function pollWaiting() {
  clearTimeout(waitingTimer);
  waitingTimer = 0;
  const mine = ++waitingPolls;
  if (!session) return;
  // Offline, there is nobody to ask (and each try would be an error in the console):
  // the "online" event asks again at once.
  if (navigator.onLine) {
    try {
      /** @type {{jobs: Job[]}} */
      const { jobs } = await request("/api/jobs?status=open&limit=500");
      if (!session || mine !== waitingPolls) return;
      const before = waiting;
      waiting = new Map(jobs.filter((j) => typeof j.waiting_since === "number")
        .map((j) => [j.id, /** @type {number} */ (j.waiting_since)]));
      // New jobs, by others too, unless the list answers a search of its own.
      if (!jobsQuery && jobsStatus === "open") showJobs(jobs.slice(0, 100), "", "open");
      else showWaiting();
      if ([...waiting.keys()].some((id) => !before.has(id))) ring();
    } catch {
      // Not reachable for now (the status line says why when it matters): ask again.
    }
  }
  if (!session || mine !== waitingPolls) return;
  waitingTimer = window.setTimeout(pollWaiting,
    document.visibilityState === "visible" ? WAITING_POLL_MS : WAITING_POLL_HIDDEN_MS);
}

function stopWaiting() {
  waitingPolls += 1;
  clearTimeout(waitingTimer);
  waitingTimer = 0;
  waiting = new Map();
  jobsShown = "";
  jobsQuery = "";
  jobsStatus = "open";
  $("#search-form", HTMLFormElement).reset();  // the form says what the list shows
  showWaiting();
}

/** "Customer is waiting" on each such job, on the open job, and in the tab's title. */
function showWaiting() {
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
  const here = currentJob !== null && waiting.has(currentJob)
    && !(call && call.job === currentJob);
  $('[data-region="job-waiting"]').hidden = !here;
  document.title = waiting.size
    ? `(${waiting.size}) Customer waiting — ${baseTitle}` : baseTitle;
}

/** A short two-tone chime, when the sound is on. */
function ring() {
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

$('[data-action="waiting-sound"]', HTMLInputElement).addEventListener("change", (event) => {
  const on = /** @type {HTMLInputElement} */ (event.target).checked;
  // Made and resumed in the click that switches it on, so the browser lets it play.
  if (on && !chime) chime = new AudioContext();
  if (chime) (on ? chime.resume() : chime.suspend()).catch(() => {});
  if (on) ring();  // what it will sound like
});

addEventListener("online", () => { if (session && waitingTimer) pollWaiting(); });
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && session && waitingTimer) pollWaiting();
});

/** A call's or a presence's length; null while it lasts. @param {number | null} s */
const lasted = (s) => (s === null ? "in progress" : duration(s));

/** @param {string} tag @param {string} text @param {string} [className] */
function el(tag, text = "", className = "") {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** @param {number} id */
async function openJob(id) {
  const mine = ++jobViews;
  /** @type {JobRecord} */
  const job = await request(`/api/jobs/${id}`);
  // Another job was opened meanwhile, or the user signed out (that counts a view too).
  if (mine !== jobViews || !session) return;
  currentJob = id;
  $("#job").hidden = $("#jobs").hidden;  // shown with the jobs view only
  $("#job-heading").textContent = job.status === "closed" ? `${job.title} (closed)` : job.title;
  const closed = job.status === "closed";
  $('[data-action="job-close"]', HTMLButtonElement).disabled = closed;
  $('[data-action="join"]').hidden = closed || call !== null;
  focusCall(document.body.classList.contains("desk-call"));
  // A closed job's links do not work and no new one can be made (the server refuses).
  for (const control of /** @type {NodeListOf<HTMLInputElement | HTMLButtonElement>} */ (
    document.querySelectorAll('#invite-form input, [data-action="invite-customer"], '
      + '[data-action="invite-technician"]'))) {
    control.disabled = closed;
  }
  $('[data-region="invites"]').replaceChildren();  // the previous job's are not this one's
  $('[data-region="invite-closed"]').hidden = !closed;
  showWaiting();
  $('[data-region="invite-link"]').textContent = "";
  $('[data-action="copy-invite"]').hidden = true;
  showQr(null);
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
  showSnapshots(job.snapshots, mine, session.token);
  await showInvites(mine);
}

/**
 * The open job's links (`GET /api/jobs/{id}/invites`), newest first, each with what
 * can be done with it: withdrawn while open or used, sent again while unused if the
 * server sent it.
 * @param {number} mine the view these belong to
 */
async function showInvites(mine = jobViews) {
  const job = currentJob;
  if (job === null) return;
  /** @type {Invite[]} */
  let invites;
  try {
    ({ invites } = await request(`/api/jobs/${job}/invites`));
  } catch (error) {
    // The rest of the job shows; the links say why they do not (an older node, say).
    if (mine === jobViews && job === currentJob) {
      $('[data-region="invites"]').replaceChildren(
        el("li", `The links could not be listed: ${/** @type {Error} */ (error).message}`,
          "empty"));
    }
    return;
  }
  if (mine !== jobViews || job !== currentJob) return;
  const items = invites.map((invite) => inviteItem(invite));
  if (!items.length) items.push(el("li", "No links yet.", "empty"));
  $('[data-region="invites"]').replaceChildren(...items);
}

/** @param {Invite} invite */
function inviteItem(invite) {
  const whom = personLabel({ name: invite.name ?? roleWord(invite.role), role: invite.role }) +
    (invite.sent_to ? ` · sent to ${invite.sent_to}` : "");
  const state = {
    open: `open until ${timeOfDay(invite.expires_at)}`,
    used: `used ${timeOfDay(invite.used_at ?? invite.created_at)}`,
    expired: `expired ${timeOfDay(invite.expires_at)}`,
    withdrawn: `withdrawn ${timeOfDay(invite.revoked_at ?? invite.created_at)}`,
  }[invite.state];
  const item = el("li", `${whom} · ${state}`);
  item.dataset.invite = String(invite.id);
  item.dataset.state = invite.state;
  const closed = $('[data-action="job-close"]', HTMLButtonElement).disabled;
  if (invite.state === "open" || invite.state === "used") {
    const withdraw = el("button", "Withdraw", "quiet");
    withdraw.dataset.action = "invite-withdraw";
    withdraw.setAttribute("aria-label", `Withdraw the link: ${whom}`);
    /** @type {HTMLButtonElement} */ (withdraw).disabled = closed;
    withdraw.addEventListener("click", () => inviteAction(invite, "withdraw", whom));
    item.append(" ", withdraw);
  }
  if (invite.sent_to && (invite.state === "open" || invite.state === "expired")) {
    const resend = el("button", "Send a new link", "quiet");
    resend.dataset.action = "invite-resend";
    resend.setAttribute("aria-label", `Send a new link in its place: ${whom}`);
    /** @type {HTMLButtonElement} */ (resend).disabled = closed;
    resend.addEventListener("click", () => inviteAction(invite, "resend", whom));
    item.append(" ", resend);
  }
  return item;
}

/**
 * Withdraw a link, or send a new one in its place; then list the links again.
 * @param {Invite} invite @param {"withdraw" | "resend"} action @param {string} whom
 */
async function inviteAction(invite, action, whom) {
  if (action === "withdraw" && !confirm(invite.state === "used"
    ? `Withdraw this link? ${whom} is removed from the call, and it stops working.`
    : `Withdraw this link? It stops working at once.`)) return;
  try {
    const answer = await request(`/api/invites/${invite.id}/${action}`, { method: "POST" });
    if (action === "resend") {
      $('[data-region="invite-link"]').textContent = answer.url;
      $('[data-action="copy-invite"]').hidden = false;
      showQr(answer.qr);
      setStatus(answer.notified
        ? `A new link sent to ${invite.sent_to}; the old one no longer works.`
        : `A new link was made, but not sent: copy it and send it yourself.`);
    } else {
      // Whoever came by a used link is removed by the server process holding the call
      // (this answer counts only its own: participants_removed).
      setStatus(answer.invite.used_at !== null
        ? `Link withdrawn; ${whom} is removed from the call.` : "Link withdrawn.");
    }
  } catch (error) {
    setStatus(/** @type {Error} */ (error).message);
  }
  await showInvites();
}

/**
 * @param {Snapshot[]} snapshots
 * @param {number} mine the view these belong to
 * @param {string} token to fetch the images with
 */
function showSnapshots(snapshots, mine, token) {
  for (const url of shownImages) URL.revokeObjectURL(url);
  shownImages = [];
  const cards = snapshots.map((s) => {
    const template = $("#snapshot-template", HTMLTemplateElement);
    const figure = /** @type {HTMLElement} */ ($("figure", HTMLElement, template.content)
      .cloneNode(true));
    figure.dataset.snapshot = String(s.id);
    const image = $("img", HTMLImageElement, figure);
    image.alt = `Snapshot ${s.original_id ?? s.id}, version ${s.version}, of ${s.camera.name}'s camera`;
    image.width = s.width;
    image.height = s.height;
    $("figcaption", HTMLElement, figure).textContent =
      `v${s.version} · ${s.camera.name}'s camera · by ${s.author.name} · ` +
      `${when(s.captured_at)} · ${s.width}×${s.height}`;
    const form = $("form", HTMLFormElement, figure);
    const input = /** @type {HTMLInputElement} */ (form.elements.namedItem("caption"));
    input.value = s.caption ?? "";
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await request(`/api/snapshots/${s.id}`, {
          method: "PATCH", body: { caption: input.value.trim() || null },
        });
        setStatus("Caption saved");
      } catch (error) {
        setStatus(/** @type {Error} */ (error).message);
      }
    });
    apiBlob(s.image_url, token).then((blob) => {
      if (mine !== jobViews) return;  // the view changed while it loaded
      const url = URL.createObjectURL(blob);
      shownImages.push(url);
      image.src = url;
    }, (error) => setStatus(/** @type {Error} */ (error).message));
    return figure;
  });
  $('[data-region="snapshots"]').replaceChildren(...cards);
}

$("#note-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.target);
  if (currentJob === null) return;
  try {
    await request(`/api/jobs/${currentJob}/notes`, {
      method: "POST", body: { text: new FormData(form).get("text") },
    });
    form.reset();
    await openJob(currentJob);
  } catch (error) {
    setStatus(/** @type {Error} */ (error).message);
  }
});

$('[data-action="job-close"]').addEventListener("click", async () => {
  if (currentJob === null) return;
  if (!confirm("Close this job? Its links stop working and a call in progress ends.")) return;
  try {
    await request(`/api/jobs/${currentJob}/close`, { method: "POST" });
    setStatus("Job closed");
    await openJob(currentJob);
    await loadJobs();
  } catch (error) {
    setStatus(/** @type {Error} */ (error).message);
  }
});

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
    await loadJobs();
    await openJob(job.id);
    go(`/jobs/${job.id}`);
    setStatus(`Created job ${job.title}`);
  } catch (error) {
    setStatus(/** @type {Error} */ (error).message);
  }
});

for (const role of ["customer", "technician"]) {
  $(`[data-action="invite-${role}"]`).addEventListener("click", async () => {
    if (currentJob === null) return;
    try {
      const form = new FormData($("#invite-form", HTMLFormElement));
      const to = String(form.get("to") || "").trim();
      const name = String(form.get("name") || "").trim();
      const invite = await request(`/api/jobs/${currentJob}/invites`, {
        method: "POST", body: { role, ...(to ? { to } : {}), ...(name ? { name } : {}) },
      });
      // The next link is for someone else; a number or address not sent stays typed.
      const fields = $("#invite-form", HTMLFormElement).elements;
      /** @type {HTMLInputElement} */ (fields.namedItem("name")).value = "";
      if (invite.notified) /** @type {HTMLInputElement} */ (fields.namedItem("to")).value = "";
      $('[data-region="invite-link"]').textContent = invite.url;
      $('[data-action="copy-invite"]').hidden = false;
      showQr(invite.qr);
      const until = new Date(invite.expires_at * 1000).toLocaleTimeString();
      // A number or address typed is never dropped in silence: the server sends only
      // through its notify webhook, and says (notified: false) when it has none.
      const whom = name ? `${name} (${role})` : `a ${role}`;
      const how = invite.sent_by === "smtp" ? "e-mailed" : "sent";
      setStatus(invite.notified ? `Link for ${whom} ${how} to ${to}; valid until ${until}.`
        : to ? `Not sent to ${to}: this server has no `
          + `${to.includes("@") ? "e-mail" : "text message gateway"} set up `
          + `(ask your administrator). Copy the link for ${whom} and send it yourself; `
          + `valid until ${until}.`
          : `Link for ${whom}, valid until ${until}. Copy it and send it.`);
      await showInvites();
    } catch (error) {
      setStatus(/** @type {Error} */ (error).message);
    }
  });
}

/**
 * Say, under the invite form, how this server sends links, and what to type.
 * @param {Sending} sending
 */
function showSending({ email, sms }) {
  const to = /** @type {HTMLInputElement} */ (
    $("#invite-form", HTMLFormElement).elements.namedItem("to"));
  // Short enough for a phone's width; the line under the form says the rest.
  to.placeholder = email && sms ? "Phone or e-mail (optional)" : email ? "E-mail (optional)"
    : sms ? "Phone (optional)" : "Phone or e-mail (not sent)";
  $('[data-region="invite-channels"]').textContent = email && sms
    ? "This server sends links by e-mail and by text message."
    : email ? "This server sends links by e-mail; no text message gateway is set up."
      : sms ? "This server sends links by text message; no e-mail is set up."
        : "This server sends no links itself: copy the link or show the QR code.";
}

/**
 * The invite link's QR code (the server's PNG, a data: URL), or none.
 * @param {string | null} dataUrl
 */
function showQr(dataUrl) {
  const qr = $('[data-region="invite-qr"]', HTMLImageElement);
  if (dataUrl) qr.src = dataUrl;
  else qr.removeAttribute("src");
  qr.hidden = !dataUrl;
}

$('[data-action="copy-invite"]').addEventListener("click", async () => {
  const link = $('[data-region="invite-link"]');
  try {
    await navigator.clipboard.writeText(link.textContent || "");
    setStatus("Link copied.");
  } catch {
    // No clipboard here (a page not served over HTTPS, or permission refused): the
    // link selected, for the keyboard's copy.
    getSelection()?.selectAllChildren(link);
    setStatus("Copy the selected link (Ctrl+C).");
  }
});

$("#search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(/** @type {HTMLFormElement} */ (event.target));
  try {
    await loadJobs(String(form.get("q") || "").trim(), String(form.get("status") ?? "open"));
  } catch (error) {
    setStatus(/** @type {Error} */ (error).message);
  }
});

// Choosing which jobs to list searches at once.
$('[data-action="job-filter"]').addEventListener("change", () => {
  $("#search-form", HTMLFormElement).requestSubmit();
});

$('[data-action="join"]').addEventListener("click", async () => {
  if (currentJob === null || !session || call) return;
  const job = currentJob;
  const button = $('[data-action="join"]');
  button.hidden = true;
  setStatus("Starting the camera…");
  const { stream, problem } = await openCamera();
  const section = /** @type {HTMLElement} */ (pristineCall.cloneNode(true));
  $("#call").replaceWith(section);
  call = new Call({ token: session.token, job, stream, notice: problem });
  showWaiting();
  const live = new CallView(section, call, {
    // A technician on site shows their own camera; an expert looks at the others'.
    layout: session.user.role === "technician" ? "field" : "expert", staff: true,
  });
  call.addEventListener("joined", () => {
    pollWaiting();  // no longer waiting for staff: say so now, not at the next poll
    section.hidden = false;
    // The call has the page to itself, at its own address; the record is Back.
    if (currentJob === job && !document.body.classList.contains("desk-call")) {
      go(`/jobs/${job}/call`);
      focusCall(true);
    }
    section.scrollIntoView({ block: "start" });
  });
  live.addEventListener("snapshot", () => {
    if (currentJob === job) openJob(job);
  });
  call.addEventListener("note.added", () => {
    if (currentJob === job) openJob(job);
  });
  call.addEventListener("state", (event) => {
    const { state, text, reason } = /** @type {CustomEvent} */ (event).detail;
    if (state !== "ended") return;
    const ended = /** @type {Call} */ (call);
    call = null;
    focusCall(false);
    if (location.pathname === `/jobs/${job}/call`) history.replaceState(null, "", `/jobs/${job}`);
    showWaiting();
    section.hidden = true;
    if (SIGNED_OUT.has(reason)) {
      signedOut(text);
      return;
    }
    // The expert says whether the problem was fixed, for the first-time-fix rate.
    if (ended.joined && session && session.user.role !== "technician" && reason !== "replaced") {
      askOutcome(ended.joined.call.id);
    }
    if (currentJob === job && session) openJob(job);
  });
  call.start();
});

$('[data-action="call-focus"]').addEventListener("click", () => {
  if (!call) return;
  go(`/jobs/${call.job}/call`);
  focusCall(true);
  $("#call").scrollIntoView({ block: "start" });
});
$('[data-action="call-record"]').addEventListener("click", () => {
  if (!call) return;
  go(`/jobs/${call.job}`);
  focusCall(false);
});

/** Close reasons after which this session is no good: sign out (docs/protocol.md). */
const SIGNED_OUT = new Set(["account_disabled", "signed_out", "session_expired", "unauthorized"]);

/** @param {number} callId */
function askOutcome(callId) {
  outcomeCall = callId;
  $("#outcome").hidden = false;
  $("#outcome").scrollIntoView({ block: "start" });
}

for (const [action, answer] of [["outcome-yes", true], ["outcome-no", false]]) {
  $(`[data-action="${action}"]`).addEventListener("click", async () => {
    if (outcomeCall === null) return;
    try {
      await request(`/api/calls/${outcomeCall}/outcome`, {
        method: "POST", body: { first_time_fix: answer },
      });
      setStatus(answer ? "Recorded: fixed on this visit." : "Recorded: not fixed yet.");
      outcomeCall = null;
      $("#outcome").hidden = true;
      if (currentJob !== null) openJob(currentJob);
    } catch (error) {
      setStatus(/** @type {Error} */ (error).message);
    }
  });
}
$('[data-action="outcome-skip"]').addEventListener("click", () => {
  outcomeCall = null;
  $("#outcome").hidden = true;
});

// A reload signs out (the session token is in this page's memory only, never on the
// device): in a call, the browser asks first. Going on anyway does not leave the call
// on purpose: the camera and the connections stop, and the server keeps the expert's
// participant for a while, so that signing in again and joining takes its place
// (docs/security.md, Coming back after a reload).
addEventListener("beforeunload", (event) => {
  if (!call) return;
  event.preventDefault();
  event.returnValue = "";  // older browsers ask only with this set
});
// Nothing stays behind: let go of the call and the images when the page goes; a page
// restored from the back-forward cache starts over, signed out.
addEventListener("pagehide", () => {
  if (call) call.suspend();
  for (const url of shownImages) URL.revokeObjectURL(url);
  shownImages = [];
});
addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });

const admin = new AdminConsole({ request, setStatus });
signedOut("Sign in to continue.");
