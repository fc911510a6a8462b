// The API keys view: making a key (its secret shown once), the keys, and revoking one.
import { AdminView } from "./admin-view.js";
import { $, button, el } from "./dom.js";
import { when as local } from "./format.js";

// The keys of GET /api/keys (docs/api.md).
/**
 * @typedef {{id: number, name: string, hint: string, scopes: string[],
 *   last_used_at: number | null, revoked_at: number | null}} ApiKey
 */

export class KeysView extends AdminView {
  /** @param {import("./admin-view.js").AdminContext} context */
  constructor(context) {
    super(context);
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
        await this.load();
      });
    });
    $('[data-action="key-hide"]').addEventListener("click", () => {
      this.region("key-value").textContent = "";
      this.region("key-secret").hidden = true;
    });
  }

  /** Signed out: forget what was shown, the secret first. */
  clear() {
    this.region("keys").replaceChildren();
    this.region("key-value").replaceChildren();
    this.region("key-secret").hidden = true;
  }

  async load() {
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
          await this.load();
        }));
        state.append(revoke);
      } else {
        state.textContent = `Revoked ${local(key.revoked_at)}`;
      }
      row.append(state);
      return row;
    }));
  }
}
