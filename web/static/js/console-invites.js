// A job's join links in its record: inviting a customer or a technician (sent by the
// server, or to copy or show as a QR code), and the links made so far, to withdraw or
// send again (docs/ui.md, Staff console).
import { $, el } from "./dom.js";
import { personLabel, roleWord, timeOfDay } from "./format.js";

// A link of GET /api/jobs/{id}/invites (docs/api.md).
/**
 * @typedef {{id: number, role: string, name: string | null, sent_to: string | null,
 *   state: "open" | "used" | "expired" | "withdrawn", created_at: number,
 *   expires_at: number, used_at: number | null, revoked_at: number | null,
 *   created_by: string | null}} Invite a job's join link, as listed
 */

export class Invites {
  /**
   * @param {{request: import("./console-session.js").Request,
   *   setStatus: (text: string) => void,
   *   record: {readonly current: number | null, readonly views: number}}} options
   *   `record`: the job whose record is shown, and how many records were (an answer
   *   for an older one is dropped)
   */
  constructor({ request, setStatus, record }) {
    this.request = request;
    this.setStatus = setStatus;
    this.record = record;
    for (const role of ["customer", "technician"]) {
      $(`[data-action="invite-${role}"]`).addEventListener("click", () => this.invite(role));
    }
    $('[data-action="copy-invite"]').addEventListener("click", async () => {
      const link = $('[data-region="invite-link"]');
      try {
        await navigator.clipboard.writeText(link.textContent || "");
        setStatus("Link copied.");
      } catch {
        // No clipboard here (a page not served over HTTPS, or permission refused): the
        // link selected, for the keyboard's copy.
        getSelection()?.selectAllChildren(link);
        setStatus("Copy the selected link (Ctrl+C).");
      }
    });
  }

  /** Make a link for the open job, send it if a number or address is typed. @param {string} role */
  async invite(role) {
    const job = this.record.current;
    if (job === null) return;
    try {
      const form = new FormData($("#invite-form", HTMLFormElement));
      const to = String(form.get("to") || "").trim();
      const name = String(form.get("name") || "").trim();
      const invite = await this.request(`/api/jobs/${job}/invites`, {
        method: "POST", body: { role, ...(to ? { to } : {}), ...(name ? { name } : {}) },
      });
      // The next link is for someone else; a number or address not sent stays typed.
      const fields = $("#invite-form", HTMLFormElement).elements;
      /** @type {HTMLInputElement} */ (fields.namedItem("name")).value = "";
      if (invite.notified) /** @type {HTMLInputElement} */ (fields.namedItem("to")).value = "";
      this.showLink(invite.url, invite.qr);
      const until = new Date(invite.expires_at * 1000).toLocaleTimeString();
      // A number or address typed is never dropped in silence: the server sends only
      // through its notify webhook, and says (notified: false) when it has none.
      const whom = name ? `${name} (${role})` : `a ${role}`;
      const how = invite.sent_by === "smtp" ? "e-mailed" : "sent";
      this.setStatus(invite.notified ? `Link for ${whom} ${how} to ${to}; valid until ${until}.`
        : to ? `Not sent to ${to}: this server has no `
          + `${to.includes("@") ? "e-mail" : "text message gateway"} set up `
          + `(ask your administrator). Copy the link for ${whom} and send it yourself; `
          + `valid until ${until}.`
          : `Link for ${whom}, valid until ${until}. Copy it and send it.`);
      await this.show();
    } catch (error) {
      this.setStatus(/** @type {Error} */ (error).message);
    }
  }

  /**
   * A new job's record: none of the last one's links, and whether links can be made
   * (a closed job's do not work and no new one can be made: the server refuses).
   * @param {boolean} closed
   */
  reset(closed) {
    for (const control of /** @type {NodeListOf<HTMLInputElement | HTMLButtonElement>} */ (
      document.querySelectorAll('#invite-form input, [data-action="invite-customer"], '
        + '[data-action="invite-technician"]'))) {
      control.disabled = closed;
    }
    $('[data-region="invites"]').replaceChildren();  // the previous job's are not this one's
    $('[data-region="invite-closed"]').hidden = !closed;
    this.showLink("", null);
  }

  /** Signed out: nothing of the last user's links. */
  clear() {
    $('[data-region="invites"]').replaceChildren();
    this.showLink("", null);  // the QR code's too: the link in it is the last user's
  }

  /**
   * The link just made, to copy, and its QR code; or none ("").
   * @param {string} url @param {string | null} qr
   */
  showLink(url, qr) {
    $('[data-region="invite-link"]').textContent = url;
    $('[data-action="copy-invite"]').hidden = !url;
    this.showQr(qr);
  }

  /**
   * The open job's links (`GET /api/jobs/{id}/invites`), newest first, each with what
   * can be done with it: withdrawn while open or used, sent again while unused if the
   * server sent it.
   * @param {number} mine the record these belong to
   */
  async show(mine = this.record.views) {
    const job = this.record.current;
    if (job === null) return;
    /** @type {Invite[]} */
    let invites;
    try {
      ({ invites } = await this.request(`/api/jobs/${job}/invites`));
    } catch (error) {
      // The rest of the job shows; the links say why they do not (an older node, say).
      if (mine === this.record.views && job === this.record.current) {
        $('[data-region="invites"]').replaceChildren(
          el("li", `The links could not be listed: ${/** @type {Error} */ (error).message}`,
            "empty"));
      }
      return;
    }
    if (mine !== this.record.views || job !== this.record.current) return;
    const items = invites.map((invite) => this.item(invite));
    if (!items.length) items.push(el("li", "No links yet.", "empty"));
    $('[data-region="invites"]').replaceChildren(...items);
  }

  /** @param {Invite} invite */
  item(invite) {
    const whom = personLabel({ name: invite.name ?? roleWord(invite.role), role: invite.role }) +
      (invite.sent_to ? ` · sent to ${invite.sent_to}` : "");
    const state = {
      open: `open until ${timeOfDay(invite.expires_at)}`,
      used: `used ${timeOfDay(invite.used_at ?? invite.created_at)}`,
      expired: `expired ${timeOfDay(invite.expires_at)}`,
      withdrawn: `withdrawn ${timeOfDay(invite.revoked_at ?? invite.created_at)}`,
    }[invite.state];
    const item = el("li", `${whom} · ${state}`);
    item.dataset.invite = String(invite.id);
    item.dataset.state = invite.state;
    const closed = $('[data-action="job-close"]', HTMLButtonElement).disabled;
    if (invite.state === "open" || invite.state === "used") {
      const withdraw = el("button", "Withdraw", "quiet");
      withdraw.dataset.action = "invite-withdraw";
      withdraw.setAttribute("aria-label", `Withdraw the link: ${whom}`);
      /** @type {HTMLButtonElement} */ (withdraw).disabled = closed;
      withdraw.addEventListener("click", () => this.act(invite, "withdraw", whom));
      item.append(" ", withdraw);
    }
    if (invite.sent_to && (invite.state === "open" || invite.state === "expired")) {
      const resend = el("button", "Send a new link", "quiet");
      resend.dataset.action = "invite-resend";
      resend.setAttribute("aria-label", `Send a new link in its place: ${whom}`);
      /** @type {HTMLButtonElement} */ (resend).disabled = closed;
      resend.addEventListener("click", () => this.act(invite, "resend", whom));
      item.append(" ", resend);
    }
    return item;
  }

  /**
   * Withdraw a link, or send a new one in its place; then list the links again.
   * @param {Invite} invite @param {"withdraw" | "resend"} action @param {string} whom
   */
  async act(invite, action, whom) {
    if (action === "withdraw" && !confirm(invite.state === "used"
      ? `Withdraw this link? ${whom} is removed from the call, and it stops working.`
      : `Withdraw this link? It stops working at once.`)) return;
    try {
      const answer = await this.request(`/api/invites/${invite.id}/${action}`, { method: "POST" });
      if (action === "resend") {
        this.showLink(answer.url, answer.qr);
        this.setStatus(answer.notified
          ? `A new link sent to ${invite.sent_to}; the old one no longer works.`
          : `A new link was made, but not sent: copy it and send it yourself.`);
      } else {
        // Whoever came by a used link is removed by the server process holding the call
        // (this answer counts only its own: participants_removed).
        this.setStatus(answer.invite.used_at !== null
          ? `Link withdrawn; ${whom} is removed from the call.` : "Link withdrawn.");
      }
    } catch (error) {
      this.setStatus(/** @type {Error} */ (error).message);
    }
    await this.show();
  }

  /**
   * Say, under the invite form, how this server sends links, and what to type.
   * @param {import("./console-session.js").Sending} sending
   */
  showSending({ email, sms }) {
    const to = /** @type {HTMLInputElement} */ (
      $("#invite-form", HTMLFormElement).elements.namedItem("to"));
    // Short enough for a phone's width; the line under the form says the rest.
    to.placeholder = email && sms ? "Phone or e-mail (optional)" : email ? "E-mail (optional)"
      : sms ? "Phone (optional)" : "Phone or e-mail (not sent)";
    $('[data-region="invite-channels"]').textContent = email && sms
      ? "This server sends links by e-mail and by text message."
      : email ? "This server sends links by e-mail; no text message gateway is set up."
        : sms ? "This server sends links by text message; no e-mail is set up."
          : "This server sends no links itself: copy the link or show the QR code.";
  }

  /**
   * The invite link's QR code (the server's PNG, a data: URL), or none.
   * @param {string | null} dataUrl
   */
  showQr(dataUrl) {
    const qr = $('[data-region="invite-qr"]', HTMLImageElement);
    if (dataUrl) qr.src = dataUrl;
    else qr.removeAttribute("src");
    qr.hidden = !dataUrl;
  }
}
