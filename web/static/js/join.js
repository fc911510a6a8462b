// The customer's (and invited technician's) page: /join#TOKEN.
//
// The landing page says who is calling and what is kept; Join redeems the one-time
// link, opens the camera (the rear one) and microphone, and joins the call in the
// "field" layout: this phone's camera big, with the expert's drawings over it.
//
// Nothing is written to the device. The participant token the link gave, and the
// participant this page is in the call, are kept in `window.name` while the call
// lasts: the browser holds it in memory for this tab only (it is not saved in the
// profile, and browsers clear it when the tab goes to another site), and it survives
// a reload, so that a reloaded page (or one the phone's browser reloads after a
// switch to another app) comes back into the same call at once. It is cleared as soon
// as the call ends for good, whatever the reason (Leave, removed, link withdrawn, call
// ended, job closed...): then nothing in the browser lets anyone back in. The address
// stays /join, without a token (docs/security.md, Coming back after a reload).
import { api, ApiError, setStatus, takeFragmentToken } from "./api.js";
import { Call, openCamera } from "./call.js";
import { CallView } from "./callview.js";
import { $ } from "./dom.js";

/** What window.name holds while in a call, before the JSON of {token, participant}. */
const KEPT = "videoassist-call:";

/**
 * The call this tab was in before it was reloaded, if any.
 * @returns {{token: string, participant: number | null} | null}
 */
function kept() {
  if (!window.name.startsWith(KEPT)) return null;
  try {
    const { token, participant } = JSON.parse(window.name.slice(KEPT.length));
    if (typeof token !== "string" || !token) return null;
    return { token, participant: Number.isInteger(participant) ? participant : null };
  } catch {
    return null;
  }
}

/** @param {string} token the participant token @param {number | null} participant */
function keep(token, participant) {
  window.name = KEPT + JSON.stringify({ token, participant });
}

function forget() {
  window.name = "";
}

const token = takeFragmentToken();
const back = token ? null : kept();
if (token) forget();  // a new link: whatever call this tab was in is over for it
const joinButton = $('[data-action="join"]', HTMLButtonElement);
/** @type {Call | null} */
let call = null;

/** @param {string} [message] */
function gone(message) {
  forget();
  joinButton.hidden = true;
  $(".hint").hidden = true;
  setStatus(message || "This link is no longer valid. Ask for a new one.");
}

async function inspect() {
  if (!token) return gone("This link is incomplete. Open the whole link from your message.");
  try {
    const info = await api("/api/invites/inspect", { method: "POST", body: { token } });
    $("#job-title").textContent = info.job.title;
    joinButton.disabled = false;
    setStatus("Ready when you are.");
  } catch (error) {
    if (error instanceof ApiError && error.status === 410) return gone(error.message);
    setStatus(/** @type {Error} */ (error).message);
    joinButton.disabled = false;
  }
}

joinButton.addEventListener("click", async () => {
  joinButton.disabled = true;
  setStatus("Joining…");
  /** @type {{token: string, role: string}} the participant's session (docs/api.md) */
  let session;
  try {
    session = await api("/api/invites/redeem", { method: "POST", body: { token } });
  } catch (error) {
    if (error instanceof ApiError && error.status === 410) return gone(error.message);
    joinButton.disabled = false;
    return setStatus(/** @type {Error} */ (error).message);
  }
  enter(session.token, null);
});

/**
 * Join the call with the participant token: after Join, or back after a reload as
 * the participant this page was.
 * @param {string} participantToken
 * @param {number | null} resume
 */
async function enter(participantToken, resume) {
  keep(participantToken, resume);
  setStatus("Starting the camera…");
  const { stream, problem } = await openCamera();
  call = new Call({ token: participantToken, stream, notice: problem, resume });
  const view = new CallView($("#call"), call, { layout: "field" });
  call.addEventListener("joined", (event) => {
    /** @type {import("./signalling.js").Joined} */
    const joined = /** @type {CustomEvent} */ (event).detail;
    keep(participantToken, joined.you.id);
    $("#landing").hidden = true;
    $("#call").hidden = false;
    $("#field-extra").hidden = false;
    $("#notes-box").hidden = joined.you.role !== "technician";
  });
  call.addEventListener("state", (event) => {
    const { state, text } = /** @type {CustomEvent} */ (event).detail;
    if (state !== "ended") return;
    forget();  // over for good: a reload no longer gets back in
    $("#landing").hidden = true;
    $("#call").hidden = true;
    $("#field-extra").hidden = true;
    $("#ended").hidden = false;
    $("#ended-title").textContent = text;
    call = null;
  });
  view.addEventListener("snapshot", (event) => {
    const { snapshot } = /** @type {CustomEvent} */ (event).detail;
    const item = document.createElement("li");
    item.dataset.snapshot = String(snapshot.id);
    item.textContent = `Picture taken at ${new Date(snapshot.captured_at * 1000)
      .toLocaleTimeString()}, kept in the job record`;
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

$("#note-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ (
    $("#note-form", HTMLFormElement).elements.namedItem("text"));
  const text = input.value.trim();
  if (!text || !call) return;
  call.send({ type: "note.add", text });
  input.value = "";
});

// The page going (a reload, the tab closed, the back-forward cache) does not leave the
// call: the camera and the connections stop, and the server keeps the participant for
// a while, so that the page reloaded comes back as it (window.name). A page restored
// from the back-forward cache reloads, and so comes back the same way.
addEventListener("pagehide", () => { if (call) call.suspend(); });
addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });

if (back) {
  $("#landing").hidden = true;
  setStatus("Coming back into the call…");
  enter(back.token, back.participant);
} else {
  inspect();
}
