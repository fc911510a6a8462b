// The staff console: sign in, jobs, invites. The session token lives in this
// module's memory only; reloading the page signs out.
import { api, ApiError, setStatus } from "./api.js";

/** @type {{token: string, user: {id: number, username: string, role: string}} | null} */
let session = null;
/** @type {number | null} */
let currentJob = null;

const $ = (selector) => document.querySelector(selector);

function signedOut(message) {
  session = null;
  $("#jobs").hidden = true;
  $("#job").hidden = true;
  $("#signin").hidden = false;
  $("#who").textContent = "";
  setStatus(message);
}

async function call(path, options = {}) {
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
  try {
    session = await api("/api/session", {
      method: "POST",
      body: { username: data.get("username"), password: data.get("password") },
    });
  } catch (error) {
    return setStatus(error.message);
  }
  form.reset();
  $("#signin").hidden = true;
  $("#jobs").hidden = false;
  $("#who").textContent = `${session.user.username} (${session.user.role})`;
  setStatus(`Signed in as ${session.user.username}`);
  await loadJobs();
});

async function loadJobs() {
  const { jobs } = await call("/api/jobs?status=open");
  $('[data-region="jobs"]').replaceChildren(...jobs.map((job) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "job";
    button.dataset.job = String(job.id);
    button.textContent = job.external_ref ? `${job.title} · ${job.external_ref}` : job.title;
    button.addEventListener("click", () => openJob(job.id));
    item.append(button);
    return item;
  }));
}

async function openJob(id) {
  const job = await call(`/api/jobs/${id}`);
  currentJob = id;
  $("#job").hidden = false;
  $("#job-heading").textContent = job.title;
  $('[data-region="invite-link"]').textContent = "";
  $('[data-region="events"]').replaceChildren(...job.events.map((e) => {
    const item = document.createElement("li");
    item.textContent = `${new Date(e.created_at * 1000).toLocaleString()} · ${e.type}`;
    return item;
  }));
}

$("#job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.target);
  const data = new FormData(form);
  try {
    const job = await call("/api/jobs", {
      method: "POST",
      body: { title: data.get("title"), external_ref: data.get("external_ref") || undefined },
    });
    form.reset();
    await loadJobs();
    await openJob(job.id);
    setStatus(`Created job ${job.title}`);
  } catch (error) {
    setStatus(error.message);
  }
});

for (const role of ["customer", "technician"]) {
  $(`[data-action="invite-${role}"]`).addEventListener("click", async () => {
    if (currentJob === null) return;
    try {
      const invite = await call(`/api/jobs/${currentJob}/invites`, {
        method: "POST", body: { role },
      });
      $('[data-region="invite-link"]').textContent = invite.url;
      setStatus(`Link for a ${role}, valid until ${new Date(invite.expires_at * 1000).toLocaleTimeString()}`);
    } catch (error) {
      setStatus(error.message);
    }
  });
}

signedOut("Sign in to continue.");
