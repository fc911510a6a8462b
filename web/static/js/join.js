// The customer's (and invited technician's) page: /join#TOKEN.
//
// The landing page says who is calling and what is kept; Join redeems the one-time
// link, opens the camera (the rear one) and microphone, and joins the call in the
// "field" layout: this phone's camera big, with the expert's drawings over it.
//
// Nothing of the call is written to the device. While the call lasts, the participant
// token the link gave is kept for a reload, split in two halves worthless alone: the
// token XOR a random pad in `window.name` (held in memory for this tab, not saved in
// the profile, survives a reload, but readable by any site the tab goes to next), and
// the pad in this page's history entry (`history.state`: only this page reads it).
// So a reloaded page (or one the phone's browser reloads after a switch to another
// app) comes back into the same call at once. Both are cleared as soon as the call
// ends for good, whatever the reason (Leave, removed, link withdrawn, call ended, job
// closed...): then nothing in the browser lets anyone back in. The address stays
// /join, without a token (docs/security.md, Coming back after a reload).
import { api, ApiError, setStatus, takeFragmentToken } from "./api.js";
import { Call, openCamera } from "./call.js";
import { CallView } from "./callview.js";
import { $ } from "./dom.js";
import { language, t } from "./i18n.js";

/** What window.name holds while in a call, before the JSON of {masked, participant}. */
const KEPT = "videoassist-call:";

/** @param {Uint8Array} bytes @returns {string} */
const toBase64 = (bytes) => btoa(String.fromCharCode(...bytes));
/** @param {string} text @returns {Uint8Array} */
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
/** @param {Uint8Array} a @param {Uint8Array} b @returns {Uint8Array} */
const xor = (a, b) => a.map((x, i) => x ^ b[i]);

/**
 * The call this tab was in before it was reloaded, if any: the token masked in
 * window.name, its mask in this page's history entry (history.state).
 * @returns {{token: string, participant: number | null} | null}
 */
function kept() {
  if (!window.name.startsWith(KEPT)) return null;
  try {
    const { masked, participant } = JSON.parse(window.name.slice(KEPT.length));
    const pad = history.state && history.state.videoassistPad;
    if (typeof masked !== "string" || typeof pad !== "string") return null;
    const bytes = fromBase64(masked);
    const key = fromBase64(pad);
    if (!bytes.length || key.length !== bytes.length) return null;
    const token = new TextDecoder().decode(xor(bytes, key));
    return { token, participant: Number.isInteger(participant) ? participant : null };
  } catch {
    return null;
  }
}

/**
 * Keep what a reload needs to come back: the participant token XOR a fresh random pad
 * in window.name (memory, this tab, but readable by any page the tab goes to next), the
 * pad in history.state (this page's history entry only, no other page's; Chromium
 * saves it in its session files, where it is random bytes). Neither is worth
 * anything alone.
 * @param {string} token the participant token @param {number | null} participant
 */
function keep(token, participant) {
  const bytes = new TextEncoder().encode(token);
  const pad = crypto.getRandomValues(new Uint8Array(bytes.length));
  history.replaceState({ videoassistPad: toBase64(pad) }, "", here());
  window.name = KEPT + JSON.stringify({ masked: toBase64(xor(bytes, pad)), participant });
}

function forget() {
  window.name = "";
  history.replaceState(null, "", here());
}

/** This page's address without the token: /join, and the language it was asked in. */
function here() {
  return location.pathname + location.search;
}

const previous = kept();  // before the address is rewritten, history.state with it
const token = takeFragmentToken();
const back = token ? null : previous;
if (token) forget();  // a new link: whatever call this tab was in is over for it
const joinButton = $('[data-action="join"]', HTMLButtonElement);
/** The call this page is in, while it lasts (state in an instance, as every view's). */
class CurrentCall {
  constructor() {
    /** @type {Call | null} */
    this.call = null;
  }

  /** A note for the job's record (a technician's). @param {string} text */
  note(text) {
    if (this.call) this.call.send({ type: "note.add", text });
    return this.call !== null;
  }

  /** The page is going: the camera and the connections stop, the call stays. */
  suspend() {
    if (this.call) this.call.suspend();
  }
}
const current = new CurrentCall();

/** @param {string} [message] */
function gone(message) {
  forget();
  const words = message || t("This link is no longer valid. Ask for a new one.");
  joinButton.hidden = true;
  $(".hint").hidden = true;
  // Said where the invitation was, not only in the status line.
  $("#job-title").textContent = t("This link cannot be used");
  $('[data-region="greeting"]').textContent = words;
  setStatus(words);
}

/**
 * The landing page's words to the person the link is for, by name where it has one.
 * @param {{name: string | null, invited_by: string | null, company: string}} info
 */
function greeting({ name, invited_by: by, company }) {
  const who = by ? t("{person} from {company}", { person: by, company }) : company;
  const show = t("Show the problem with your phone's camera: {who} can draw on your " +
    "screen to show you where to look.", { who });
  return name ? `${t("Hello {name}.", { name })} ${show}` : show;
}

/**
 * What the server (and the client's own fetch) may answer this page with, in English,
 * and in the page's words: the server speaks English only (tests/test_i18n.py checks
 * these are its words).
 */
const ANSWERS = new Map([
  ["This link is no longer valid. Ask for a new one.",
    t("This link is no longer valid. Ask for a new one.")],
  ["The job this link was for is closed.", t("The job this link was for is closed.")],
  ["Too many attempts. Wait a moment and try again.",
    t("Too many attempts. Wait a moment and try again.")],
  ["This server is restarting and takes no new calls. Try again in a minute.",
    t("This server is restarting and takes no new calls. Try again in a minute.")],
  ["The service is not available right now.", t("The service is not available right now.")],
  ["The server cannot be reached. Check the connection.",
    t("The server cannot be reached. Check the connection.")],
]);

/** An error as this page says it. @param {Error} error @returns {string} */
const said = (error) => ANSWERS.get(error.message) ?? error.message;

/** The company, as the server named it for this page. */
const company = $("#landing").dataset.company ?? "";

/** Who the person on the phone waits for, as told them: "Anna from Acme Heating" (after
 * a reload, the company: who made the link is not kept). @param {string | null} by */
const awaitedOf = (by) => (by ? t("{person} from {company}", { person: by, company })
  : company);

async function inspect() {
  if (!token) return gone(t("This link is incomplete. Open the whole link from your message."));
  try {
    const info = await api("/api/invites/inspect", { method: "POST", body: { token } });
    $("#job-title").textContent = info.job.title;
    if (info.name || info.invited_by) {
      $('[data-region="greeting"]').textContent = greeting(info);
    }
    joinButton.disabled = false;
    setStatus(t("Ready when you are."));
  } catch (error) {
    if (error instanceof ApiError && error.status === 410) return gone(said(error));
    setStatus(said(/** @type {Error} */ (error)));
    joinButton.disabled = false;
  }
}

joinButton.addEventListener("click", async () => {
  joinButton.disabled = true;
  // The link is being used: a switch now would load the page again with it spent.
  $('[data-action="language"]', HTMLSelectElement).disabled = true;
  setStatus(t("Joining…"));
  /** @type {{token: string, role: string, invited_by: string | null}} the
   * participant's session (docs/api.md) */
  let session;
  try {
    session = await api("/api/invites/redeem", { method: "POST", body: { token } });
  } catch (error) {
    if (error instanceof ApiError && error.status === 410) return gone(said(error));
    joinButton.disabled = false;
    return setStatus(said(/** @type {Error} */ (error)));
  }
  enter(session.token, null, awaitedOf(session.invited_by));
});

/**
 * Join the call with the participant token: after Join, or back after a reload as
 * the participant this page was.
 * @param {string} participantToken
 * @param {number | null} resume
 * @param {string} awaited who they wait for while nobody else is in the call
 */
async function enter(participantToken, resume, awaited = awaitedOf(null)) {
  keep(participantToken, resume);
  setStatus(t("Starting the camera…"));
  const { stream, problem, cameras } = await openCamera();
  const call = current.call = new Call({ token: participantToken, stream, cameras,
    notice: problem, resume });
  const view = new CallView($("#call"), call, { layout: "field", awaited });
  call.addEventListener("joined", (event) => {
    /** @type {import("./signalling.js").Joined} */
    const joined = /** @type {CustomEvent} */ (event).detail;
    keep(participantToken, joined.you.id);
    document.body.classList.add("in-call");  // the picture takes the screen (app.css)
    $("#landing").hidden = true;
    $("#call").hidden = false;
    $("#field-extra").hidden = false;
    $("#notes-box").hidden = joined.you.role !== "technician";
  });
  call.addEventListener("state", (event) => {
    const { state, text } = /** @type {CustomEvent} */ (event).detail;
    if (state !== "ended") return;
    forget();  // over for good: a reload no longer gets back in
    document.body.classList.remove("in-call");
    $("#landing").hidden = true;
    $("#call").hidden = true;
    $("#field-extra").hidden = true;
    $("#ended").hidden = false;
    $("#ended-title").textContent = text;
    current.call = null;
  });
  view.addEventListener("snapshot", (event) => {
    const { snapshot } = /** @type {CustomEvent} */ (event).detail;
    const item = document.createElement("li");
    item.dataset.snapshot = String(snapshot.id);
    item.textContent = t("Picture taken at {time}, kept in the job record", {
      time: new Date(snapshot.captured_at * 1000).toLocaleTimeString(language) });
    $('[data-region="snapshots"]').append(item);
  });
  call.addEventListener("note.added", (event) => {
    const { note } = /** @type {CustomEvent} */ (event).detail;
    const item = document.createElement("li");
    item.textContent = `${note.author}: ${note.text}`;
    $('[data-region="notes"]').append(item);
  });
  call.start();
}

// The language switch: the page again in the language chosen, the link with it (back
// in the address for the moment of the load, which takes it out again, as the link
// tapped did). Nothing is kept: the address says the language.
$('[data-action="language"]', HTMLSelectElement).addEventListener("change", (event) => {
  const chosen = /** @type {HTMLSelectElement} */ (event.target).value;
  const address = `${location.pathname}?lang=${encodeURIComponent(chosen)}`;
  location.replace(token ? `${address}#${encodeURIComponent(token)}` : address);
});

$("#note-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ (
    $("#note-form", HTMLFormElement).elements.namedItem("text"));
  const text = input.value.trim();
  if (text && current.note(text)) input.value = "";
});

// The page going (a reload, the tab closed, the back-forward cache) does not leave the
// call: the camera and the connections stop, and the server keeps the participant for
// a while, so that the page reloaded comes back as it (window.name). A page restored
// from the back-forward cache reloads, and so comes back the same way.
// A new link opened in this tab changes only the address's fragment, which does not
// load the page again: load it, so the new link is read (and any call of the old one
// is left as a reload leaves it). Taking the token out of the address fires nothing.
addEventListener("hashchange", () => { if (location.hash.length > 1) location.reload(); });
addEventListener("pagehide", () => current.suspend());
addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });

if (back) {
  $("#landing").hidden = true;
  setStatus(t("Coming back into the call…"));
  enter(back.token, back.participant);
} else {
  inspect();
}
