// The supervisors' board: breached and at-risk clocks, counts by group, agent and channel,
// the charts, CSAT per week and at-risk customers, kept current by the SLA stream. A
// mounted board owns its stream, its refresh timer and the breaches it has seen.
import { api, stream } from "/console/api.js";
import { metricCharts } from "/console/charts.js";
import { announce, el, toast } from "/console/dom.js";
import { t, timeLeft, when } from "/console/i18n.js";
import { session } from "/console/state.js";

// Render the board into `app`; `openTicket(id)` is how a listed ticket is opened (in the
// queue). Returns `{ stop }`.
export function mountBoard(app, openTicket) {
  let breached = null; // "ticket:clock" keys on the board last time
  let refreshTimer = null;
  let live = null;
  let stopped = false;

  async function render() {
    let board; let metrics; let risky; let csat;
    try {
      [board, metrics, risky, csat] = await Promise.all([
        api("/sla/board?window_minutes=30"), api("/sla/metrics?period=day"), api("/customers/at-risk"),
        api("/csat/metrics?period=week"),
      ]);
    } catch (error) { toast(error.message, true); return; }
    if (stopped) return;
    const focused = document.activeElement && app.contains(document.activeElement) ? document.activeElement.id : null;
    const list = (items, kind) => el("ul", {}, ...items.map((i) => el("li", { "data-ticket": i.ticket_id },
      el("a", { href: `#ticket-${i.ticket_id}`, id: `board-${kind}-${i.ticket_id}-${i.clock}`, onclick: (e) => {
        e.preventDefault(); openTicket(i.ticket_id); } }, `#${i.number} ${i.subject}`),
      ` · ${t(i.clock)} · ${timeLeft(i.due_at).text}`)));
    const names = {
      group: new Map(session.groups.map((g) => [String(g.id), g.name])),
      agent: new Map(session.agents.map((a) => [String(a.id), a.name])),
    };
    const counts = (key, rows, kind) => el("section", { class: "panel" }, el("strong", { id: `count-${key}` }, t(key)),
      rows.length ? el("table", { class: "data", "aria-labelledby": `count-${key}` },
        el("thead", {}, el("tr", {}, ...[t("key"), t("breached"), t("at_risk")].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, ...rows.map((r) => el("tr", {},
          el("th", { scope: "row" }, r.key === "none" ? t("none") : (names[kind]?.get(r.key) || r.key)),
          el("td", {}, r.breached), el("td", {}, r.at_risk))))) : el("p", { class: "muted" }, t("nothing")));
    // A breach that was not on the board before is said aloud.
    const ids = board.breached.map((i) => `${i.ticket_id}:${i.clock}`);
    if (breached) {
      const fresh = board.breached.filter((i) => !breached.has(`${i.ticket_id}:${i.clock}`));
      if (fresh.length) announce(`${t("sla_breached")}: ${fresh.map((i) => `#${i.number} ${i.subject}`).join(", ")}`);
    }
    breached = new Set(ids);
    app.replaceChildren(el("div", { class: "layout" },
      el("div", {},
        el("h2", { id: "breached-heading" }, `✖ ${t("breached")} (${board.breached.length})`),
        el("div", { id: "board-breached" }, list(board.breached, "breached")),
        el("h2", {}, `⚠ ${t("at_risk")} (${board.at_risk.length})`),
        el("div", { id: "board-at-risk" }, list(board.at_risk, "risk")),
        counts("by_group", board.by_group, "group"), counts("by_agent", board.by_agent, "agent"),
        counts("by_channel", board.by_channel, "channel")),
      el("div", { id: "board-charts" }, ...metricCharts(metrics),
        el("section", { class: "panel", id: "board-csat" }, el("strong", {}, t("csat")),
          el("ul", {}, ...csat.map((r) => el("li", {}, `${when(r.period)}: ${r.average ? r.average.toFixed(2) : "–"} (${r.answered}/${r.sent})`)))),
        el("section", { class: "panel" }, el("strong", {}, t("at_risk_customers")),
          el("ul", {}, ...risky.map((c) => el("li", { class: "risk" }, `⚠ ${c.customer.name || c.customer.email || c.customer.id}`)))))));
    if (focused) document.getElementById(focused)?.focus();
    if (!live) {
      live = stream("/sla/stream", () => {
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(() => { if (!stopped) render(); }, 300);
      });
    }
  }

  render();
  return {
    stop() {
      stopped = true;
      live?.abort();
      clearTimeout(refreshTimer);
    },
  };
}
