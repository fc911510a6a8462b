// Set a password through a one-time link: /setup#TOKEN.
import { api, ApiError, setStatus, takeFragmentToken } from "./api.js";
import { $ } from "./dom.js";

const token = takeFragmentToken();
const form = $("#setup-form", HTMLFormElement);

/** @param {string} id */
function show(id) {
  for (const section of ["setup", "done", "dead"]) {
    $(`#${section}`).hidden = section !== id;
  }
}

if (!token) {
  show("dead");
  setStatus("This link is incomplete. Open the whole link you were given.");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const password = String(data.get("password"));
  if (password !== String(data.get("password2"))) {
    return setStatus("The two passwords are not the same.");
  }
  setStatus("Saving…");
  /** @type {{user: {username: string}}} */
  let session;
  try {
    session = await api("/api/password", { method: "POST", body: { token, password } });
  } catch (error) {
    if (error instanceof ApiError && error.status === 410) {
      form.reset();
      show("dead");
    }
    return setStatus(/** @type {Error} */ (error).message);
  }
  form.reset();
  $('[data-region="username"]').textContent = session.user.username;
  show("done");
  setStatus("Password set.");
});
