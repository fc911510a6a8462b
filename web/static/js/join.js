// The customer's (and invited technician's) page: /join#TOKEN.
//
// The landing page says who is calling and what is kept; Join redeems the one-time
// link, opens the camera (the rear one) and microphone, and joins the call in the
// "field" layout: this phone's camera big, with the expert's drawings over it. The
// tokens live in this module's memory only, and nothing is written to the device.
import { api, ApiError, setStatus, takeFragmentToken } from "./api.js";
import { Call, openCamera } from "./call.js";
import { CallView } from "./callview.js";
import { $ } from "./dom.js";

const token = takeFragmentToken();
const joinButton = $('[data-action="join"]', HTMLButtonElement);
/** @type {Call | null} */
let call = null;

/** @param {string} [message] */
function gone(message) {
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
  setStatus("Starting the camera…");
  const { stream, problem } = await openCamera();
  call = new Call({ token: session.token, stream, notice: problem });
  const view = new CallView($("#call"), call, { layout: "field" });
  const technician = session.role === "technician";
  call.addEventListener("joined", () => {
    $("#landing").hidden = true;
    $("#call").hidden = false;
    $("#field-extra").hidden = false;
    $("#notes-box").hidden = !technician;
  });
  call.addEventListener("state", (event) => {
    const { state, text } = /** @type {CustomEvent} */ (event).detail;
    if (state !== "ended") return;
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
  $("#note-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ (
      $("#note-form", HTMLFormElement).elements.namedItem("text"));
    const text = input.value.trim();
    if (!text || !call) return;
    call.send({ type: "note.add", text });
    input.value = "";
  });
  call.start();
});

// Nothing of the call survives the page: leave on pagehide, and a page restored from
// the back-forward cache starts over (its link is used, so it says so).
addEventListener("pagehide", () => { if (call) call.leave(); });
addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });

inspect();
