// The admin views of the console: people, who is in a call now, API keys, the audit
// log and the dashboard. Like the rest of the console, it keeps everything in page
// memory and downloads nothing: exports are the API's and the CLI's (docs/ui.md).
import { barChart, columnChart } from "./charts.js";
import { $ } from "./dom.js";
import { duration, personLabel, when as local } from "./format.js";

// The answers of docs/api.md these views read.
/**
 * @typedef {{id: number, username: string, display_name: string | null, name: string,
 *   role: string, has_password: boolean,
 *   in_call: boolean} & ({active: true, disabled_at: null}
 *   | {active: false, disabled_at: number})} User
 * @typedef {{id: number, name: string, role: string, joined_at: number,
 *   user_id: number | null, media: boolean}} LiveParticipant
 * @typedef {{call_id: number, job: {id: number, title: string},
 *   participants: LiveParticipant[]}} LiveCall
 * @typedef {{id: number, name: string, hint: string, scopes: string[],
 *   last_used_at: number | null, revoked_at: number | null}} ApiKey
 * @typedef {{id: number, created_at: number, actor: string, action: string,
 *   target: string | null, detail: Record<string, unknown>,
 *   personal: {values: Record<string, unknown>} | null}} AuditEntry
 * @typedef {{count: number, median: number | null, p95: number | null}} Spread
 * @typedef {{calls_per_day: {day: string, calls: number}[],
 *   calls: {total: number, ended: number}, duration_s: Spread, invite_to_join_s: Spread,
 *   invites: Record<string, {created: number, redeemed: number, open: number,
 *     redeemed_share: number | null}>,
 *   snapshots: {total: number, per_call: number | null},
 *   people: {user_id: number | null, username: string | null, role: string,
 *     calls: number}[],
 *   first_time_fix: {yes: number, no: number, unanswered: number,
 *     rate: number | null}}} Analytics
 */

const LIVE_REFRESH_MS = 2000;
const AUDIT_PAGE = 100;

/** @param {string} tag @param {string} [text] @param {string} [className] */
function el(tag, text = "", className = "") {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** @param {string} label @param {string} [className] */
function button(label, className = "") {
  const node = /** @type {HTMLButtonElement} */ (el("button", label, className));
  node.type = "button";
  return node;
}

/** A user's state in words. @param {User} user @param {boolean} inCall */
function stateText(user, inCall) {
  const state = [user.active ? "Active" : `Disabled ${local(user.disabled_at)}`];
  if (!user.has_password) state.push("no password yet");
  if (inCall) state.push("in a call");
  return state.join(" · ");
}

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

/** @param {number | null} share */
const percent = (share) => (share === null ? "–" : `${Math.round(share * 100)} %`);

export class AdminConsole {
  /**
   * @param {{request: (path: string, options?: {method?: string, body?: object}) =>
   *   Promise<any>,
   *   setStatus: (text: string) => void}} options
   */
  constructor({ request, setStatus }) {
    this.request = request;
    this.setStatus = setStatus;
    /** @type {{id: number, username: string, role: string} | null} */
    this.me = null;
    this.liveTimer = 0;
    /** Bumped whenever the view changes or the admin signs out: a late answer for an
     * older view is dropped, never shown, and starts no timer. */
    this.generation = 0;
    /** @type {string} the audit filters of the page shown, for "older entries" */
    this.auditQuery = "";
    /** @type {Map<number, User>} the users listed, by id */
    this.users = new Map();
    /** @type {number | null} the oldest audit entry shown, for "older entries" */
    this.auditBefore = null;
    this.wire();
  }

  /** @param {{id: number, username: string, role: string}} user the admin signed in */
  start(user) {
    this.me = user;
  }

  /** Signed out: forget everything shown. */
  stop() {
    this.me = null;
    this.generation += 1;
    clearInterval(this.liveTimer);
    this.liveTimer = 0;
    for (const region of ["users", "live-calls", "keys", "audit", "figures", "chart-calls",
      "chart-people", "user-link", "key-value"]) {
      this.region(region).replaceChildren();
    }
    this.region("key-secret").hidden = true;
    for (const form of document.querySelectorAll(".admin form")) {
      /** @type {HTMLFormElement} */ (form).reset();
    }
  }

  /** @param {string} name */
  region(name) {
    return $(`[data-region="${name}"]`);
  }

  /** A view was opened (or left, with null): load what it shows. @param {string | null} view */
  async show(view) {
    const mine = ++this.generation;
    clearInterval(this.liveTimer);
    this.liveTimer = 0;
    try {
      if (view === "people") {
        await Promise.all([this.loadUsers(), this.loadLive()]);
        if (mine !== this.generation) return;
        this.liveTimer = setInterval(() => this.loadLive().catch(() => {}), LIVE_REFRESH_MS);
      } else if (view === "keys") {
        await this.loadKeys();
      } else if (view === "audit") {
        await this.loadAudit(false);
      } else if (view === "dashboard") {
        await this.loadDashboard();
      }
    } catch (error) {
      this.setStatus(/** @type {Error} */ (error).message);
    }
  }

  /** Runs an action, saying what went wrong if it fails. @param {() => Promise<void>} work */
  async attempt(work) {
    try {
      await work();
    } catch (error) {
      this.setStatus(/** @type {Error} */ (error).message);
    }
  }

  wire() {
    $("#user-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = /** @type {HTMLFormElement} */ (event.target);
      const data = new FormData(form);
      this.attempt(async () => {
        const answer = await this.request("/api/users", {
          method: "POST", body: { username: String(data.get("username")).trim(),
            display_name: String(data.get("display_name") ?? "").trim() || null,
            role: data.get("role") },
        });
        form.reset();
        this.showLink(answer.user.username, answer.password_link);
        this.setStatus(`Added ${answer.user.username} (${answer.user.role})`);
        await this.loadUsers();
      });
    });
    $('[data-action="live-refresh"]').addEventListener("click",
      () => this.attempt(() => this.loadLive()));
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = /** @type {HTMLFormElement} */ (event.target);
      const data = new FormData(form);
      this.attempt(async () => {
        const key = await this.request("/api/keys", {
          method: "POST", body: { name: String(data.get("name")).trim(),
            scopes: data.getAll("scope") },
        });
        form.reset();
        this.region("key-value").textContent = key.key;
        this.region("key-secret").hidden = false;
        this.setStatus(`Created key ${key.name}. Copy it now: it is shown once.`);
        await this.loadKeys();
      });
    });
    $('[data-action="key-hide"]').addEventListener("click", () => {
      this.region("key-value").textContent = "";
      this.region("key-secret").hidden = true;
    });
    $("#audit-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.attempt(() => this.loadAudit(false));
    });
    $('[data-action="audit-more"]').addEventListener("click",
      () => this.attempt(() => this.loadAudit(true)));
    $("#dashboard-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.attempt(() => this.loadDashboard());
    });
  }

  /** @param {string} username @param {{url: string, expires_at: number}} link */
  showLink(username, link) {
    this.region("user-link").textContent =
      `One-time link for ${username} to set a password, valid until ${local(link.expires_at)}: ` +
      link.url;
  }

  // -- people ------------------------------------------------------------------

  /** Fetch for the current view; null if the view changed meanwhile. @param {string} path */
  async fetch(path) {
    const mine = this.generation;
    const answer = await this.request(path);
    return mine === this.generation ? answer : null;
  }

  async loadUsers() {
    const answer = await this.fetch("/api/users");
    if (!answer) return;
    /** @type {{users: User[]}} */
    const { users } = answer;
    this.users = new Map(users.map((user) => [user.id, user]));
    this.region("users").replaceChildren(...users.map((user) => this.userRow(user)));
  }

  /** @param {User} user */
  userRow(user) {
    const row = document.createElement("tr");
    row.dataset.user = String(user.id);
    row.dataset.username = user.username;
    const self = this.me !== null && user.id === this.me.id;
    row.append(el("td", self ? `${user.username} (you)` : user.username));

    // The name others see in calls: changed in place (Enter, or leaving the field).
    const shown = /** @type {HTMLInputElement} */ (document.createElement("input"));
    shown.dataset.action = "user-display-name";
    shown.maxLength = 64;
    shown.value = user.display_name ?? "";
    shown.placeholder = user.username;
    shown.setAttribute("aria-label", `Name of ${user.username} shown in calls`);
    shown.addEventListener("change", () => this.attempt(async () => {
      const wanted = shown.value.trim() || null;
      try {
        await this.request(`/api/users/${user.id}`,
          { method: "PATCH", body: { display_name: wanted } });
      } finally {
        await this.loadUsers();
      }
      this.setStatus(wanted ? `${user.username} is shown as ${wanted} in calls they join`
        : `${user.username} is shown by their username in calls they join`);
    }));
    const shownCell = el("td");
    shownCell.append(shown);
    row.append(shownCell);

    const role = /** @type {HTMLSelectElement} */ (document.createElement("select"));
    role.dataset.action = "user-role";
    role.setAttribute("aria-label", `Role of ${user.username}`);
    for (const name of ["technician", "expert", "admin"]) {
      const option = /** @type {HTMLOptionElement} */ (el("option", name));
      option.value = name;
      option.selected = name === user.role;
      role.append(option);
    }
    role.disabled = self;
    role.addEventListener("change", () => this.attempt(async () => {
      if (!confirm(`Make ${user.username} ${role.value}? They are signed out everywhere.`)) {
        role.value = user.role;
        return;
      }
      try {
        await this.request(`/api/users/${user.id}`, { method: "PATCH", body: { role: role.value } });
      } finally {
        await this.loadUsers();
      }
      this.setStatus(`${user.username} is now ${role.value}; they sign in again.`);
    }));
    const roleCell = el("td");
    roleCell.append(role);
    row.append(roleCell);

    const stateCell = el("td", stateText(user, user.in_call));
    stateCell.dataset.state = user.active ? "active" : "disabled";
    row.append(stateCell);

    const actionsCell = el("td");
    const actions = el("div", "", "actions");
    actionsCell.append(actions);
    if (!self) {
      if (user.active) {
        const disable = button("Disable", "danger");
        disable.dataset.action = "user-disable";
        disable.setAttribute("aria-label", `Disable ${user.username}`);
        disable.addEventListener("click", () => this.attempt(async () => {
          if (!confirm(`Disable ${user.username}? They are signed out at once.`)) return;
          const answer = await this.request(`/api/users/${user.id}/disable`, { method: "POST" });
          this.setStatus(`Disabled ${user.username}: ${answer.connections_closed} connections ` +
            `closed, ${answer.invites_revoked} open links withdrawn.`);
          await Promise.all([this.loadUsers(), this.loadLive()]);
        }));
        const reset = button("Reset password");
        reset.dataset.action = "user-reset";
        reset.setAttribute("aria-label", `Reset password of ${user.username}`);
        reset.addEventListener("click", () => this.attempt(async () => {
          if (!confirm(`Reset the password of ${user.username}? The old one stops working ` +
            "and they are signed out everywhere.")) return;
          const answer = await this.request(`/api/users/${user.id}/password-reset`,
            { method: "POST" });
          this.showLink(user.username, answer.password_link);
          this.setStatus(`Password of ${user.username} reset: send them the link.`);
          await this.loadUsers();
        }));
        actions.append(disable, reset);
      } else {
        const enable = button("Enable");
        enable.dataset.action = "user-enable";
        enable.setAttribute("aria-label", `Enable ${user.username}`);
        enable.addEventListener("click", () => this.attempt(async () => {
          await this.request(`/api/users/${user.id}/enable`, { method: "POST" });
          this.setStatus(`Enabled ${user.username}`);
          await this.loadUsers();
        }));
        actions.append(enable);
      }
    }
    row.append(actionsCell);
    return row;
  }

  async loadLive() {
    const [live, listed] = await Promise.all([
      this.fetch("/api/calls/live"), this.fetch("/api/users")]);
    if (!live || !listed) return;
    /** @type {{calls: LiveCall[]}} */
    const { calls } = live;
    /** @type {{users: User[]}} */
    const { users } = listed;
    // The users' states follow too (a password set, a call joined), without redrawing
    // the rows: a role being chosen stays open.
    const fresh = new Map(users.map((user) => [user.id, user]));
    const inCall = new Set(calls.flatMap((c) => c.participants.map((p) => p.user_id)));
    for (const row of this.region("users").querySelectorAll("tr[data-user]")) {
      const id = Number(/** @type {HTMLElement} */ (row).dataset.user);
      const user = fresh.get(id), cell = row.querySelector("[data-state]");
      if (!user || !cell || user.active !== this.users.get(id)?.active) continue;
      this.users.set(id, user);
      cell.textContent = stateText(user, inCall.has(id));
    }
    const region = this.region("live-calls");
    if (!calls.length) {
      region.replaceChildren(el("li", "Nobody is in a call.", "empty"));
      return;
    }
    region.replaceChildren(...calls.map((call) => {
      const item = el("li", `${call.job.title} · call ${call.call_id}`);
      item.dataset.call = String(call.call_id);
      const people = el("ul", "", "people");
      people.append(...call.participants.map((p) => {
        const person = el("li", `${personLabel(p)} since ` +
          `${new Date(p.joined_at * 1000).toLocaleTimeString()}` +
          (p.media ? "" : " · no media yet"));
        person.dataset.participant = String(p.id);
        if (p.user_id !== null) person.dataset.user = String(p.user_id);
        return person;
      }));
      item.append(people);
      return item;
    }));
  }

  // -- API keys ----------------------------------------------------------------

  async loadKeys() {
    const answer = await this.fetch("/api/keys");
    if (!answer) return;
    /** @type {{keys: ApiKey[]}} */
    const { keys } = answer;
    if (!keys.length) {
      const row = document.createElement("tr");
      const cell = /** @type {HTMLTableCellElement} */ (el("td", "No API keys yet.", "empty"));
      cell.colSpan = 4;
      row.append(cell);
      this.region("keys").replaceChildren(row);
      return;
    }
    this.region("keys").replaceChildren(...keys.map((key) => {
      const row = document.createElement("tr");
      row.dataset.key = String(key.id);
      row.append(el("td", `${key.name} (…${key.hint})`), el("td", key.scopes.join(", ")),
        el("td", key.last_used_at === null ? "never" : local(key.last_used_at)));
      const state = el("td");
      if (key.revoked_at === null) {
        const revoke = button("Revoke", "danger");
        revoke.dataset.action = "key-revoke";
        revoke.setAttribute("aria-label", `Revoke ${key.name}`);
        revoke.addEventListener("click", () => this.attempt(async () => {
          if (!confirm(`Revoke ${key.name}? The integration using it stops working at once.`)) {
            return;
          }
          await this.request(`/api/keys/${key.id}`, { method: "DELETE" });
          this.setStatus(`Revoked ${key.name}`);
          await this.loadKeys();
        }));
        state.append(revoke);
      } else {
        state.textContent = `Revoked ${local(key.revoked_at)}`;
      }
      row.append(state);
      return row;
    }));
  }

  // -- audit log ---------------------------------------------------------------

  /** @param {boolean} more the next page of older entries, rather than the newest */
  async loadAudit(more) {
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
      this.auditQuery = filters.toString();
      this.generation += 1;  // an older page still loading is dropped
    }
    const query = new URLSearchParams(this.auditQuery);
    if (more && this.auditBefore !== null) query.set("before", String(this.auditBefore));
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
    this.auditBefore = next;
    $('[data-action="audit-more"]').hidden = next === null;
  }

  // -- dashboard ---------------------------------------------------------------

  async loadDashboard() {
    const data = new FormData($("#dashboard-form", HTMLFormElement));
    const query = new URLSearchParams();
    for (const name of ["from", "to"]) {
      const value = String(data.get(name) || "");
      if (value) query.set(name, value);
    }
    this.generation += 1;  // an earlier period still loading is dropped
    /** @type {Analytics | null} */
    const figures = await this.fetch(`/api/analytics?${query}`);
    if (!figures) return;
    const days = figures.calls_per_day;
    this.setStatus(`Dashboard for ${days[0].day} to ${days[days.length - 1].day} (UTC)`);
    const customer = figures.invites.customer;
    const fix = figures.first_time_fix;
    const rows = [
      ["calls", "Calls", figures.calls.total,
        `${figures.calls.total} (${figures.calls.ended} ended)`],
      ["duration-median", "Median call", figures.duration_s.median,
        duration(figures.duration_s.median)],
      ["duration-p95", "95th percentile call", figures.duration_s.p95,
        duration(figures.duration_s.p95)],
      ["invite-to-join-median", "Link to customer joined, median",
        figures.invite_to_join_s.median, duration(figures.invite_to_join_s.median)],
      ["invite-to-join-p95", "Link to customer joined, 95th percentile",
        figures.invite_to_join_s.p95, duration(figures.invite_to_join_s.p95)],
      ["invites-redeemed", "Customer links used", customer.redeemed_share,
        `${percent(customer.redeemed_share)} (${customer.redeemed} of ` +
        `${customer.created - customer.open}${customer.open ? `, ${customer.open} still open` : ""})`],
      ["snapshots-per-call", "Snapshots per call", figures.snapshots.per_call,
        figures.snapshots.per_call === null ? "–"
          : `${figures.snapshots.per_call.toFixed(1)} (${figures.snapshots.total} in all)`],
      ["first-time-fix", "First-time fix", fix.rate,
        `${percent(fix.rate)} (${fix.yes} of ${fix.yes + fix.no} answered; ` +
        `${fix.unanswered} not answered)`],
    ];
    this.region("figures").replaceChildren(...rows.map(([key, label, value, text]) => {
      const item = el("div", "", "figure");
      item.dataset.figure = String(key);
      item.dataset.value = value === null ? "" : String(value);
      item.append(el("dt", String(label)), el("dd", String(text)));
      return item;
    }));
    columnChart(this.region("chart-calls"),
      days.map((d) => ({ label: d.day.slice(5), value: d.calls })), "Calls per day");
    barChart(this.region("chart-people"), figures.people.map((p) => ({
      label: p.username === null ? "Technicians by link" : `${p.username} (${p.role})`,
      value: p.calls,
    })), "Calls per person");
  }
}
