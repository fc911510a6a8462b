// Chat panel: shows the call's chat.message events, sends from a form.
//
// A line typed here shows at once, marked "sending…" until it comes back from the
// server (then it is an ordinary line, where it was typed), or "not sent" when the
// call ended before it could go (call.js: chat.pending, chat.unsent). Each line the
// server sent carries data-message="ID", each one waiting data-client-id and
// data-state="sending" or "unsent".

import { shownName } from "./format.js";
import { t } from "./i18n.js";

/**
 * @param {HTMLElement} line
 * @param {string} who
 * @param {string} text
 */
function fill(line, who, text) {
  const name = document.createElement("b");
  name.textContent = `${who}: `;
  line.replaceChildren(name, document.createTextNode(text));
}

/**
 * @param {import("./call.js").Call} call what carries the chat, across reconnections
 * @param {HTMLElement} log
 * @param {HTMLFormElement} form
 */
export function attachChat(call, log, form) {
  /** @param {string} id @returns {HTMLElement | null} */
  const waiting = (id) => /** @type {HTMLElement | null} */ (
    log.querySelector(`[data-client-id="${CSS.escape(id)}"]`));
  call.addEventListener("chat.message", (event) => {
    /** @type {import("./signalling.js").ChatMessage} */
    const { message, client_id: id } = /** @type {CustomEvent} */ (event).detail;
    const pending = id === undefined ? null : waiting(id);
    if (log.querySelector(`[data-message="${message.id}"]`)) {
      if (pending) pending.remove();  // already shown (a resend's stored line)
      return;
    }
    const line = pending || document.createElement("p");
    delete line.dataset.clientId;
    delete line.dataset.state;
    line.dataset.message = String(message.id);
    fill(line, shownName(message.from), message.text);
    if (!pending) log.append(line);
    log.scrollTop = log.scrollHeight;
  });
  call.addEventListener("chat.pending", (event) => {
    const { client_id: id, text } = /** @type {CustomEvent} */ (event).detail;
    const line = document.createElement("p");
    line.dataset.clientId = id;
    line.dataset.state = "sending";
    fill(line, t("You"), text);
    const note = document.createElement("small");
    note.textContent = ` ${t("(sending…)")}`;
    line.append(note);
    log.append(line);
    log.scrollTop = log.scrollHeight;
  });
  call.addEventListener("chat.unsent", (event) => {
    const line = waiting(/** @type {CustomEvent} */ (event).detail.client_id);
    if (!line) return;
    line.dataset.state = "unsent";
    const note = line.querySelector("small");
    if (note) note.textContent = ` ${t("(not sent)")}`;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ (form.elements.namedItem("message"));
    const text = input.value.trim();
    if (!text) return;
    call.sendChat(text);
    input.value = "";
  });
}
