// How the console says times, durations and a job's timeline to people: local time,
// seconds where short, and each event as a sentence with who did it.

import { t } from "./i18n.js";

/** Unix seconds as the browser's local date and time. @param {number} at */
export const when = (at) => new Date(at * 1000).toLocaleString();

/** Unix seconds as the browser's local time of day. @param {number} at */
export const timeOfDay = (at) => new Date(at * 1000).toLocaleTimeString();

/**
 * A duration as people say it: "6 s", "2 min 5 s", "1 h 20 min"; "–" for none.
 * @param {number | null | undefined} seconds
 */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60), rest = Math.round(seconds % 60);
  if (minutes < 60) return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
}

/** What each role is called in a sentence. */
const ROLES = /** @type {Record<string, string>} */ ({
  customer: "customer", technician: "technician", expert: "expert", admin: "admin",
});

/** What each role is called beside a name, in the page's words. */
const ROLE_WORDS = /** @type {Record<string, string>} */ ({
  customer: t("Customer"), technician: t("Technician"), expert: t("Expert"), admin: t("Admin"),
});

/** How the server names a person by their role, where nobody gave a name (English). */
const UNNAMED = /** @type {Record<string, string>} */ ({
  customer: "Customer", technician: "Technician", expert: "Expert", admin: "Admin",
});

/**
 * A person's name as the page shows it: the role's word in the page's language where
 * nobody named them (the server says "Customer").
 * @param {{name: string, role: string}} person
 */
export const shownName = ({ name, role }) => (name === UNNAMED[role] ? roleWord(role) : name);

/** A role as a word beside a name: "Customer". @param {string} role */
export const roleWord = (role) => ROLE_WORDS[role] ?? role;

/**
 * A person in a call as people say it: "Anna Berg · Expert"; the role alone where the
 * name is only the role's word ("Customer": nobody named the link).
 * @param {{name: string, role: string}} person
 */
export function personLabel({ name, role }) {
  const word = roleWord(role);
  if (!word) return name;
  return name === UNNAMED[role] || name === word ? word : `${name} · ${word}`;
}

/**
 * @typedef {{type: string, created_at: number, who?: string | null,
 *   data?: Record<string, unknown>}} JobEvent an event of a job's record (docs/api.md)
 */

/**
 * One event of a job's timeline as a sentence: what happened and who did it, where
 * the record says (an event this console does not know is said by its name).
 * @param {JobEvent} event
 */
export function eventText(event) {
  const data = event.data ?? {};
  const by = event.who ? ` by ${event.who}` : "";
  const who = event.who ?? "Someone";
  const role = typeof data.role === "string" ? ROLES[data.role] ?? data.role : "participant";
  const roleKey = typeof data.role === "string" ? data.role : "";
  const version = typeof data.version === "number" ? data.version : 1;
  switch (event.type) {
    case "job.created": return `Job created${by}`;
    case "job.closed": return `Job closed${by}`;
    case "invite.created": return `Link for a ${role} made${by}`;
    case "invite.redeemed": return `Link for a ${role} opened`;
    case "invite.withdrawn": return `Link for a ${role} withdrawn${by}`;
    case "call.started": return "Call started";
    case "call.ended": return "Call ended";
    case "participant.joined":
      return `${personLabel({ name: who, role: roleKey })} joined the call`;
    case "participant.left":
      return `${personLabel({ name: who, role: roleKey })} left the call`;
    case "snapshot.saved": return `Snapshot taken${by}`;
    case "snapshot.annotated": return `Snapshot annotated again${by} (version ${version})`;
    default: return event.type;
  }
}
