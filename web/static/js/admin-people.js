// The people view's accounts: adding one (its set-password link shown), and for each
// its name in calls, role, state, and disabling, enabling or resetting it.
import { AdminView } from "./admin-view.js";
import { $, button, el } from "./dom.js";
import { when as local } from "./format.js";

// The users of GET /api/users (docs/api.md).
/**
 * @typedef {{id: number, username: string, display_name: string | null, name: string,
 *   role: string, has_password: boolean,
 *   in_call: boolean} & ({active: true, disabled_at: null}
 *   | {active: false, disabled_at: number})} User
 */

/** The roles, as the add form names them (_admin.html). */
const ROLES = [["technician", "Technician"], ["expert", "Expert"], ["admin", "Admin"]];

/** A user's state in words. @param {User} user @param {boolean} inCall */
function stateText(user, inCall) {
  const state = [user.active ? "Active" : `Disabled ${local(user.disabled_at)}`];
  if (!user.has_password) state.push("no password yet");
  if (inCall) state.push("in a call");
  return state.join(" · ");
}

export class PeopleView extends AdminView {
  /**
   * @param {import("./admin-view.js").AdminContext & {loadLive: () => Promise<void>}}
   *   context `loadLive`: show who is in a call again (a user disabled leaves theirs)
   */
  constructor(context) {
    super(context);
    this.loadLive = context.loadLive;
    /** @type {{id: number, username: string, role: string} | null} the admin signed in */
    this.me = null;
    /** @type {Map<number, User>} the users listed, by id */
    this.users = new Map();
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
        await this.load();
      });
    });
  }

  /** Signed out: forget who and what was shown. */
  clear() {
    this.me = null;
    for (const region of ["users", "user-link"]) this.region(region).replaceChildren();
  }

  /** @param {string} username @param {{url: string, expires_at: number}} link */
  showLink(username, link) {
    this.region("user-link").textContent =
      `One-time link for ${username} to set a password, valid until ${local(link.expires_at)}: ` +
      link.url;
  }

  async load() {
    const answer = await this.fetch("/api/users");
    if (!answer) return;
    /** @type {{users: User[]}} */
    const { users } = answer;
    this.users = new Map(users.map((user) => [user.id, user]));
    this.region("users").replaceChildren(...users.map((user) => this.row(user)));
  }

  /**
   * The users' states as they are now (a password set, a call joined), without
   * redrawing the rows: a role being chosen stays open.
   * @param {User[]} users @param {Set<number | null>} inCall the users in a call
   */
  follow(users, inCall) {
    const fresh = new Map(users.map((user) => [user.id, user]));
    for (const row of this.region("users").querySelectorAll("tr[data-user]")) {
      const id = Number(/** @type {HTMLElement} */ (row).dataset.user);
      const user = fresh.get(id), cell = row.querySelector("[data-state]");
      if (!user || !cell || user.active !== this.users.get(id)?.active) continue;
      this.users.set(id, user);
      cell.textContent = stateText(user, inCall.has(id));
    }
  }

  /** @param {User} user */
  row(user) {
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
        await this.load();
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
    for (const [name, label] of ROLES) {
      const option = /** @type {HTMLOptionElement} */ (el("option", label));
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
        await this.load();
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
    if (!self) actions.append(...this.actions(user));
    row.append(actionsCell);
    return row;
  }

  /** What can be done to another user's account: its buttons. @param {User} user */
  actions(user) {
    if (!user.active) {
      const enable = button("Enable");
      enable.dataset.action = "user-enable";
      enable.setAttribute("aria-label", `Enable ${user.username}`);
      enable.addEventListener("click", () => this.attempt(async () => {
        await this.request(`/api/users/${user.id}/enable`, { method: "POST" });
        this.setStatus(`Enabled ${user.username}`);
        await this.load();
      }));
      return [enable];
    }
    const disable = button("Disable", "danger");
    disable.dataset.action = "user-disable";
    disable.setAttribute("aria-label", `Disable ${user.username}`);
    disable.addEventListener("click", () => this.attempt(async () => {
      if (!confirm(`Disable ${user.username}? They are signed out at once.`)) return;
      const answer = await this.request(`/api/users/${user.id}/disable`, { method: "POST" });
      this.setStatus(`Disabled ${user.username}: ${answer.connections_closed} connections ` +
        `closed, ${answer.invites_revoked} open links withdrawn.`);
      await Promise.all([this.load(), this.loadLive()]);
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
      await this.load();
    }));
    return [disable, reset];
  }
}
