// The audit log view: the entries that match the filters, newest first, a page at a
// time (docs/ui.md, Admin views).
import { AdminView } from "./admin-view.js";
import { $, el } from "./dom.js";
import { when as local } from "./format.js";

// The entries of GET /api/audit (docs/api.md).
/**
 * @typedef {{id: number, created_at: number, actor: string, action: string,
 *   target: string | null, detail: Record<string, unknown>,
 *   personal: {values: Record<string, unknown>} | null}} AuditEntry
 */

const AUDIT_PAGE = 100;

/**
 * An audit entry's detail as people read it, "key: value · key: value": times (keys
 * ending in `_at`) in local time, lists joined; the personal values (a customer's
 * address) in place of the commitment the chain covers, "(erased)" once their job was.
 * @param {AuditEntry} entry
 */
function detailText(entry) {
  /** @type {Record<string, unknown>} */
  const shown = { ...entry.detail };
  const commitment = /** @type {{fields?: string[]} | undefined} */ (shown.personal);
  if (commitment) {
    delete shown.personal;
    for (const field of commitment.fields ?? []) {
      shown[field] = entry.personal ? entry.personal.values[field] : "(erased)";
    }
  }
  return Object.entries(shown).map(([key, value]) => `${key.replaceAll("_", " ")}: ${
    key.endsWith("_at") && typeof value === "number" ? local(value)
      : Array.isArray(value) ? value.join(", ")
        : typeof value === "object" && value !== null ? JSON.stringify(value)
          : String(value)}`).join(" · ");
}

/**
 * A cell naming an actor or a target: its name now, where the server knows one (the
 * page's `names`), then the reference the filters take (`user:3`).
 * @param {string | null} ref @param {Record<string, string>} names
 */
function refCell(ref, names) {
  const cell = el("td");
  if (!ref) return cell;
  const name = names[ref];
  if (name) cell.append(name, " ", el("span", ref, "ref"));
  else cell.textContent = ref;
  return cell;
}

export class AuditView extends AdminView {
  /** @param {import("./admin-view.js").AdminContext} context */
  constructor(context) {
    super(context);
    /** @type {string} the filters of the page shown, for "older entries" */
    this.query = "";
    /** @type {number | null} the oldest entry shown, for "older entries" */
    this.before = null;
    $("#audit-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.attempt(() => this.load(false));
    });
    $('[data-action="audit-more"]').addEventListener("click",
      () => this.attempt(() => this.load(true)));
  }

  /** Signed out: forget what was shown. */
  clear() {
    this.region("audit").replaceChildren();
  }

  /** @param {boolean} more the next page of older entries, rather than the newest */
  async load(more) {
    if (!more) {
      // A new first page: the filters as typed now, kept for its older pages.
      const data = new FormData($("#audit-form", HTMLFormElement));
      const filters = new URLSearchParams({ limit: String(AUDIT_PAGE) });
      for (const name of ["action", "actor", "target"]) {
        const value = String(data.get(name) || "").trim();
        if (value) filters.set(name, value);
      }
      const from = String(data.get("from") || ""), to = String(data.get("to") || "");
      // Whole days of this browser's time zone, as the times are shown.
      if (from) filters.set("since", String(new Date(`${from}T00:00:00`).getTime() / 1000));
      if (to) {
        const end = new Date(`${to}T00:00:00`);
        end.setDate(end.getDate() + 1);
        filters.set("until", String(end.getTime() / 1000));
      }
      this.query = filters.toString();
      this.generation.next();  // an older page still loading is dropped
    }
    const query = new URLSearchParams(this.query);
    if (more && this.before !== null) query.set("before", String(this.before));
    const answer = await this.fetch(`/api/audit?${query}`);
    if (!answer) return;
    /** @type {{entries: AuditEntry[], next_before: number | null,
     *   names: Record<string, string>}} */
    const { entries, next_before: next, names } = answer;
    const rows = entries.map((entry) => {
      const row = document.createElement("tr");
      row.dataset.audit = String(entry.id);
      row.append(el("td", String(entry.id)), el("td", local(entry.created_at)),
        refCell(entry.actor, names), el("td", entry.action), refCell(entry.target, names),
        el("td", detailText(entry), "detail"));
      return row;
    });
    if (more) this.region("audit").append(...rows);
    else this.region("audit").replaceChildren(...rows);
    if (!more && !rows.length) {
      const row = document.createElement("tr");
      const cell = /** @type {HTMLTableCellElement} */ (el("td", "Nothing matches.", "empty"));
      cell.colSpan = 6;
      row.append(cell);
      this.region("audit").append(row);
    }
    this.before = next;
    $('[data-action="audit-more"]').hidden = next === null;
  }
}
