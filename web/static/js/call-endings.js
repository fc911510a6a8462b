// How a call ends, or is refused for now, in words (docs/protocol.md, Close codes): a
// close that ends it for good, and a join the server refuses for now (the call is
// full, too many connections or joins: 4429; 4400), which is tried again; and what
// went wrong while it goes on (an `error` that leaves the connection open).
import { language, t } from "./i18n.js";

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

/**
 * What went wrong with something this page sent, the call going on (docs/protocol.md,
 * Error codes), in the page's words: the server's own (English, and the most precise)
 * on an English page, the code's in words on a translated one.
 * @param {{code: string, message: string, ref?: string}} error
 * @returns {string}
 */
export function trouble(error) {
  if (language === "en") return error.message;
  const { code, ref } = error;
  if (code === "unavailable" && ref === "sdp.offer") {
    return t("The server has no free media port right now. Try again in a minute.");
  }
  if (code === "unavailable") return t("The camera sent no picture in time. Try again.");
  if (code === "too_large") return t("That was too large to send.");
  if (code === "not_found") return t("They are no longer in the call.");
  if (code === "forbidden") return t("That is not open to you in this call.");
  if (code === "conflict") return t("That could not be done just now. Try again.");
  if (code === "rate_limited") return t("Too much at once: wait a moment, then try again.");
  return t("Something went wrong. If it happens again, reload the page.");
}
