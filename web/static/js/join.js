// The customer's (and invited technician's) page: /join#TOKEN.
import { api, ApiError, setStatus, takeFragmentToken } from "./api.js";
import { Signalling } from "./signalling.js";
import { attachChat } from "./chat.js";
import { MediaLink } from "./media.js";

const token = takeFragmentToken();
const joinButton = /** @type {HTMLButtonElement} */ (document.querySelector('[data-action="join"]'));
/** @type {Signalling | null} */
let signalling = null;
/** @type {MediaLink | null} */
let media = null;

function gone(message) {
  joinButton.hidden = true;
  setStatus(message || "This link is no longer valid. Ask for a new one.");
}

async function inspect() {
  if (!token) return gone("This link is incomplete. Open the whole link from your message.");
  try {
    const info = await api("/api/invites/inspect", { method: "POST", body: { token } });
    document.getElementById("job-title").textContent = `${info.company}: ${info.job.title}`;
    joinButton.disabled = false;
    setStatus("Ready when you are.");
  } catch (error) {
    if (error instanceof ApiError && error.status === 410) return gone(error.message);
    setStatus(error.message);
    joinButton.disabled = false;
  }
}

function showParticipants(list) {
  const region = document.querySelector('[data-region="participants"]');
  region.replaceChildren(...list.map((p) => {
    const item = document.createElement("li");
    item.dataset.participant = String(p.id);
    item.textContent = p.name;
    return item;
  }));
}

joinButton.addEventListener("click", async () => {
  joinButton.disabled = true;
  setStatus("Joining…");
  let session;
  try {
    session = await api("/api/invites/redeem", { method: "POST", body: { token } });
  } catch (error) {
    if (error instanceof ApiError && error.status === 410) return gone(error.message);
    joinButton.disabled = false;
    return setStatus(error.message);
  }
  const people = new Map();
  signalling = new Signalling(session.token);
  signalling.addEventListener("joined", (event) => {
    const msg = /** @type {CustomEvent} */ (event).detail;
    for (const p of msg.participants) people.set(p.id, p);
    showParticipants([...people.values()]);
    document.getElementById("landing").hidden = true;
    document.getElementById("call").hidden = false;
    setStatus("Connected");
    startMedia(msg);
  });
  signalling.addEventListener("participant.joined", (event) => {
    const p = /** @type {CustomEvent} */ (event).detail.participant;
    people.set(p.id, p);
    showParticipants([...people.values()]);
  });
  signalling.addEventListener("participant.left", (event) => {
    people.delete(/** @type {CustomEvent} */ (event).detail.participant.id);
    showParticipants([...people.values()]);
  });
  signalling.addEventListener("closed", () => {
    stopMedia();
    setStatus("The call has ended.");
  });
  attachChat(signalling, document.querySelector('[data-region="chat"]'),
    /** @type {HTMLFormElement} */ (document.getElementById("chat-form")));
  signalling.connect();
});

/**
 * Camera (the rear one by default) and microphone, then the connection to the server.
 * @param {{ice_servers: RTCIceServer[], ice_transport_policy: RTCIceTransportPolicy}} joined
 */
async function startMedia(joined) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "environment" },
      audio: true,
    });
  } catch (error) {
    const denied = error && error.name === "NotAllowedError";
    return setStatus(denied
      ? "Camera and microphone are blocked. Allow them in the browser to show the problem."
      : "The camera could not be started. Is another app using it?");
  }
  const preview = /** @type {HTMLVideoElement} */ (
    document.querySelector('[data-region="local-video"]'));
  preview.srcObject = stream;
  media = new MediaLink(signalling, joined);
  media.addEventListener("localtrack", (event) => {
    // Staff switched this phone's camera (camera.control): preview the new one.
    const track = /** @type {CustomEvent} */ (event).detail;
    preview.srcObject = new MediaStream([track, ...stream.getAudioTracks()]);
  });
  const remote = new MediaStream();
  media.addEventListener("track", (event) => {
    const { track } = /** @type {CustomEvent} */ (event).detail;
    remote.addTrack(track);
    /** @type {HTMLVideoElement} */ (document.querySelector('[data-region="remote-video"]'))
      .srcObject = remote;
  });
  media.addEventListener("state", (event) => {
    const state = /** @type {CustomEvent} */ (event).detail;
    if (state === "connected") setStatus("Connected");
    else if (state === "failed") setStatus("The video connection was lost.");
  });
  await media.publish(stream);
}

function stopMedia() {
  if (media) media.close();
  media = null;
}

document.querySelector('[data-action="leave"]').addEventListener("click", () => {
  stopMedia();
  if (signalling) signalling.leave();
});

// Nothing of the call survives the page: close on pagehide, and a page restored from
// the back-forward cache starts over (the link is used, so it says so).
addEventListener("pagehide", () => {
  stopMedia();
  if (signalling) signalling.leave();
});
addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });

inspect();
