// The dashboard view: a period's figures and charts (docs/ui.md, Admin views).
import { AdminView } from "./admin-view.js";
import { barChart, columnChart } from "./charts.js";
import { $, el } from "./dom.js";
import { duration } from "./format.js";

// The answer of GET /api/analytics (docs/api.md).
/**
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

/** @param {number | null} share */
const percent = (share) => (share === null ? "–" : `${Math.round(share * 100)} %`);

export class DashboardView extends AdminView {
  /** @param {import("./admin-view.js").AdminContext} context */
  constructor(context) {
    super(context);
    $("#dashboard-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.attempt(() => this.load());
    });
  }

  /** Signed out: forget what was shown. */
  clear() {
    for (const region of ["figures", "chart-calls", "chart-people"]) {
      this.region(region).replaceChildren();
    }
  }

  async load() {
    const data = new FormData($("#dashboard-form", HTMLFormElement));
    const query = new URLSearchParams();
    for (const name of ["from", "to"]) {
      const value = String(data.get(name) || "");
      if (value) query.set(name, value);
    }
    this.generation.next();  // an earlier period still loading is dropped
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
