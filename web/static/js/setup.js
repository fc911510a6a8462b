// Set a password through a one-time link: /setup#TOKEN.
import { api, setStatus, takeFragmentToken } from "./api.js";

const token = takeFragmentToken();
const form = /** @type {HTMLFormElement} */ (document.getElementById("setup-form"));

if (!token) setStatus("This link is incomplete. Open the whole link you were given.");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const password = String(data.get("password"));
  if (password !== String(data.get("password2"))) {
    return setStatus("The two passwords are not the same.");
  }
  setStatus("Saving…");
  try {
    await api("/api/password", { method: "POST", body: { token, password } });
  } catch (error) {
    return setStatus(error.message);
  }
  form.reset();
  form.hidden = true;
  document.getElementById("done").hidden = false;
  setStatus("Password set.");
});
