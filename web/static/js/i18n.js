// The words of the customer's and the invited technician's pages in their language
// (videoassist/i18n.py): the join page carries its language's translations, keyed by
// the English, in <script type="application/json" id="messages">. The console carries
// none, and so stays English. Write `t("Hello {name}.", { name })`: the English as a
// string literal (scripts/messages extracts them), placeholders in braces.

/** @type {Record<string, string>} */
const messages = (() => {
  // None outside a page (Node.js runs some modules in tests): English.
  const element = typeof document === "undefined" ? null
    : document.getElementById("messages");
  if (!element) return {};
  try {
    const parsed = JSON.parse(element.textContent ?? "");
    return parsed && typeof parsed === "object" ? parsed : {};
  } catch {
    return {};
  }
})();

/** The page's language ("en", "de", "fr", "es"). */
export const language = (typeof document === "undefined" ? "" : document.documentElement.lang)
  || "en";

/**
 * The page's words for `english`, its `{name}` placeholders filled from `params` (a
 * placeholder without a value stays as it is).
 * @param {string} english
 * @param {Record<string, string | number>} [params]
 * @returns {string}
 */
export function t(english, params = {}) {
  const text = Object.hasOwn(messages, english) ? messages[english] : english;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    (Object.hasOwn(params, name) ? String(params[name]) : whole));
}
