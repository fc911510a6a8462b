// How a call ends, or is refused for now, in words (docs/protocol.md, Close codes): a
// close that ends it for good, and a join the server refuses for now (the call is
// full, too many connections or joins: 4429; 4400), which is tried again.
import { t } from "./i18n.js";

/**
 * Close reasons that end the call for good, in words.
 * @type {Record<string, string>}
 */
const ENDINGS = {
  left: t("You left the call."),
  call_ended: t("The call has ended."),
  job_closed: t("The call has ended: the job was closed."),
  unauthorized: t("This link is no longer valid. Ask for a new one."),
  session_expired: t("Your session has expired. Sign in again."),
  account_disabled: t("You have been signed out."),
  signed_out: t("You have been signed out. Sign in again."),
  link_revoked: t("This link was withdrawn. Ask for a new one."),
  removed: t("You were removed from the call."),
  replaced: t("The call goes on in another tab or window."),
  forbidden: t("This call is not open to you."),
  not_found: t("This job no longer exists."),
};

/** The words of leaving on purpose. */
export const LEFT = ENDINGS.left;

/**
 * Whether a socket's close ends the call for good, and in which words: null for a
 * close after which the socket is opened again.
 * @param {number} code the close code
 * @param {string} reason the close reason
 * @returns {{text: string, reason: string} | null} the words, and the reason the call
 *   ended with
 */
export function ending(code, reason) {
  if (code === 4410) return { text: ENDINGS.replaced, reason: "replaced" };
  if (code === 1000 || code === 4401 || code === 4403) {
    return { text: ENDINGS[reason] || t("The call has ended."), reason };
  }
  return null;
}

/**
 * Why the server refused to let this client in for now, in words (docs/protocol.md:
 * close 4429 and 4400), or null for any other close.
 * @param {number} code the close code
 * @param {string} reason the close reason
 * @param {boolean} staff whether the client came with a staff account, not a link
 * @returns {string | null}
 */
export function refusal(code, reason, staff) {
  if (code === 4400) return t("The server did not accept this page's messages.");
  if (code !== 4429) return null;
  if (reason === "call_full") return t("This call is full.");
  if (reason === "too_many_connections") {
    return staff
      ? t("Too many connections from your account: close the call in your other tabs or windows.")
      : t("Too many connections from this link: close the other tabs or windows where it is open.");
  }
  return t("Too many joins in a short time.");
}
