// The queue: one view's tickets (mine, unassigned, ...) in keyset pages of PAGE rows,
// kept current by the ticket stream. Each mounted queue owns its cursor, its stream and
// its refresh timer; `stop()` ends them when the agent switches views.
import { api, stream } from "/console/api.js";
import { announce, el, toast } from "/console/dom.js";
import { t, timeLeft } from "/console/i18n.js";
import { session } from "/console/state.js";
import { openTicket } from "/console/ticket.js";

const PAGE = 50; // rows per queue page; more come with "Load more" (keyset cursor)
// Statuses no working view lists; the others come from GET /meta.
const DONE = new Set(["solved", "closed"]);

// Each view's filters (GET /tickets query parameters).
const VIEWS = {
  mine: () => ({ assignee: "me", status: session.meta.ticket_statuses.filter((s) => !DONE.has(s)) }),
  unassigned: () => ({ assignee: "unassigned", status: ["new", "open"] }),
  open: () => ({ status: ["new", "open"] }),
  pending: () => ({ status: "pending" }),
  breached: () => ({ sla: "breached" }),
  at_risk: () => ({ sla: "at_risk" }),
};
export const QUEUE_VIEWS = Object.keys(VIEWS);

let query = ""; // the search stays when the agent switches views

// Render the queue of `view` into `app`. Returns `{ stop }`.
export function mountQueue(app, view) {
  const filters = VIEWS[view]();
  let cursor = null;
  let refreshTimer = null;
  let live = null;
  let stopped = false;

  function params(from, limit = PAGE) {
    const found = new URLSearchParams();
    for (const [key, value] of Object.entries(filters)) {
      for (const item of [].concat(value)) found.append(key, item);
    }
    if (query) found.set("q", query);
    found.set("limit", String(limit));
    if (from) found.set("cursor", from);
    return found;
  }

  // One row per ticket. The subject is a real link: Tab reaches it, Enter opens the
  // ticket, and screen readers announce it as something to activate; a click anywhere on
  // the row opens it too.
  function row(ticket, fresh) {
    const due = timeLeft(ticket.next_sla_due_at, ticket.next_sla_warn_at);
    const current = session.ticketId === ticket.id;
    const link = el("a", { href: `#ticket-${ticket.id}`, class: "open-ticket", "data-open": ticket.id,
      "aria-current": current ? "true" : null,
      onclick: (e) => { e.preventDefault(); openTicket(ticket.id); } }, ticket.subject);
    return el("tr", { "data-ticket": ticket.id,
        class: [fresh ? "new-row" : "", current ? "selected" : ""].join(" ").trim() || null,
        onclick: (e) => { if (!e.target.closest("a")) openTicket(ticket.id); } },
      el("td", {}, `#${ticket.number}`),
      el("td", {}, link, fresh ? el("span", { class: "badge fresh" }, ` ${t("new_tickets")}`) : null),
      el("td", {}, el("span", { class: `badge ${ticket.channel}` }, ticket.channel)),
      el("td", {}, ticket.status),
      el("td", {}, ticket.priority),
      el("td", { class: `clock ${due.cls}` }, due.text));
  }

  const nothing = () => el("tr", {}, el("td", { colspan: "6" }, t("nothing")));

  function showCount(body, count) {
    count.textContent = t("next_page", { n: body.querySelectorAll("tr[data-ticket]").length });
  }

  // Keyset pages: thousands of tickets never load at once. Keyboard focus moves to the
  // first newly loaded ticket, so "Load more" does not leave the agent at the bottom.
  async function loadPage(body, more, count, first = false) {
    let page;
    try { page = await api(`/tickets?${params(first ? null : cursor)}`); }
    catch (error) { toast(error.message, true); return; }
    if (stopped) return;
    if (first) body.replaceChildren();
    const rows = page.items.map((ticket) => row(ticket, false));
    body.append(...rows);
    if (first && !page.items.length) body.append(nothing());
    cursor = page.next_cursor;
    more.hidden = !page.next_cursor;
    showCount(body, count);
    if (!first && rows.length) rows[0].querySelector("a.open-ticket").focus();
  }

  // A change arrives: re-read as many rows as are shown (so loaded pages stay and the
  // cursor stays right), mark rows that were not there before and say so to screen readers.
  function onTicketChange(change, body, more, count) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(async () => {
      const known = new Set([...body.querySelectorAll("tr[data-ticket]")].map((r) => r.dataset.ticket));
      const focused = document.activeElement?.dataset?.open;
      const items = [];
      const want = Math.max(known.size, PAGE);
      let next = null;
      try {
        do {
          const page = await api(`/tickets?${params(next, Math.min(100, want - items.length))}`);
          items.push(...page.items);
          next = page.next_cursor;
        } while (next && items.length < want);
      } catch { return; }
      if (stopped || !document.body.contains(body)) return;
      const fresh = items.filter((ticket) => !known.has(String(ticket.id)));
      body.replaceChildren(...items.map((ticket) => row(ticket, fresh.includes(ticket))));
      if (!items.length) body.append(nothing());
      cursor = next;
      more.hidden = !next;
      showCount(body, count);
      if (focused) body.querySelector(`a[data-open="${focused}"]`)?.focus();
      if (fresh.length) announce(`${t("new_tickets")}: ${fresh.map((x) => `#${x.number} ${x.subject}`).join(", ")}`);
      if (session.ticketId === change.ticket_id) openTicket(change.ticket_id, { quiet: true });
    }, 300);
  }

  async function render() {
    live?.abort();
    clearTimeout(refreshTimer);
    const search = el("input", { type: "search", placeholder: t("search"), value: query, id: "search" });
    const form = el("form", { class: "filters", role: "search", onsubmit: (e) => {
      e.preventDefault(); query = search.value.trim(); render(); } },
      el("label", { for: "search", class: "sr-only" }, t("search")),
      search, el("button", { type: "submit" }, t("search")), el("span", { class: "muted" }, `● ${t("live")}`));
    const body = el("tbody", { id: "queue" });
    const caption = el("caption", { class: "sr-only", id: "queue-caption" }, t(view));
    const table = el("table", { "aria-labelledby": "queue-caption" }, caption,
      el("thead", {}, el("tr", {}, ...["number", "subject", "channel", "status", "priority", "due"]
        .map((key) => el("th", { scope: "col" }, t(key))))), body);
    const count = el("p", { id: "queue-count", class: "muted" });
    const more = el("button", { type: "button", id: "more", hidden: true,
      onclick: () => loadPage(body, more, count) }, t("more"));
    const detail = el("section", { id: "detail", "aria-label": t("no_ticket") },
      el("p", { class: "muted" }, t("no_ticket")));
    app.replaceChildren(el("div", { class: "layout" },
      el("div", {}, form, el("p", { class: "muted small", id: "shortcuts" }, t("shortcuts")), table, count, more),
      detail));
    cursor = null;
    await loadPage(body, more, count, true);
    if (stopped) return;
    live = stream("/tickets/stream", (kind, change) => onTicketChange(change, body, more, count));
    if (session.ticketId) openTicket(session.ticketId, { quiet: true });
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
