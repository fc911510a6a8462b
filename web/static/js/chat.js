// Chat panel: shows chat.message events, sends from a form.

/**
 * @param {EventTarget & {send: (message: object) => void}} signalling what carries the
 *   chat: a Signalling, or a Call (which forwards chat.message across reconnections)
 * @param {HTMLElement} log
 * @param {HTMLFormElement} form
 */
export function attachChat(signalling, log, form) {
  signalling.addEventListener("chat.message", (event) => {
    const { message } = /** @type {CustomEvent} */ (event).detail;
    const line = document.createElement("p");
    const who = document.createElement("b");
    who.textContent = `${message.from.name}: `;
    line.append(who, document.createTextNode(message.text));
    log.append(line);
    log.scrollTop = log.scrollHeight;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ (form.elements.namedItem("message"));
    const text = input.value.trim();
    if (!text) return;
    signalling.send({ type: "chat.message", text });
    input.value = "";
  });
}
