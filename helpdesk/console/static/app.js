// The console: a thin client of the public API. Everything shown comes from the API with
// the agent's own token (kept in sessionStorage); text is always inserted as text, never
// as HTML, so nothing a customer wrote can run here.
import { language, setLanguage, t } from "/console/i18n.js";

const state = { token: sessionStorage.getItem("helpdesk.token"), me: null, view: "mine",
  cursor: null, q: "", ticketId: null, streams: [], agents: [], groups: [], breached: null };
const PAGE = 50; // rows per queue page; more come with "Load more" (keyset cursor)

// --- small helpers -------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A label that names its control: visible text, read out with the control.
function field(key, control) {
  return el("label", { class: "field" }, el("span", {}, t(key)), control);
}

// What the agent just did (saved, failed): shown and spoken. Errors say so in words too.
let toastTimer = null;
function toast(message, error = false) {
  const box = document.getElementById("toast");
  box.textContent = error ? `${t("error")}: ${message}` : message;
  box.classList.toggle("error", error);
  box.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("show"), error ? 6000 : 2500);
}

// What arrived live (new tickets, new breaches): spoken by screen readers, not shown.
function announce(message) {
  const box = document.getElementById("announce");
  box.textContent = "";
  setTimeout(() => { box.textContent = message; }, 50);
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && path !== "/auth/login") { logout(); throw new Error("401"); }
  if (!response.ok) {
    let detail = `${response.status}`;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    throw new Error(detail);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response;
}

// Server-sent events over fetch (EventSource cannot send the Authorization header).
function stream(path, onEvent) {
  const controller = new AbortController();
  state.streams.push(controller);
  let last = null;
  (async function run() {
    while (!controller.signal.aborted) {
      try {
        const headers = { Authorization: `Bearer ${state.token}` };
        if (last) headers["Last-Event-ID"] = last;
        const response = await fetch(path, { headers, signal: controller.signal });
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          // Events end with a blank line; servers may use CRLF (litestar does).
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event = { event: "message", data: null, id: null };
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) event.event = line.slice(7);
              else if (line.startsWith("data: ")) event.data = line.slice(6);
              else if (line.startsWith("id: ")) event.id = line.slice(4);
            }
            if (event.id) last = event.id;
            if (event.data) onEvent(event.event, JSON.parse(event.data));
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
}

function stopStreams() { for (const c of state.streams) c.abort(); state.streams = []; }

function when(iso) { return iso ? new Date(iso).toLocaleString(language()) : ""; }

// Time left on an SLA clock. The state is said in words ("At risk", "Breached") and
// marked with a symbol, so it never rests on colour alone. `warnIso` is the clock's own
// warning time (the ticket's `next_sla_warn_at` in the queue); without it, 15 minutes.
function timeLeft(iso, warnIso = null) {
  if (!iso) return { text: "", cls: "" };
  const now = Date.now();
  const minutes = Math.round((new Date(iso) - now) / 60000);
  if (minutes < 0) return { text: `✖ ${t("sla_breached")}: ${-minutes} min ${t("overdue")}`, cls: "bad" };
  const warn = warnIso ? new Date(warnIso) <= now : minutes <= 15;
  if (warn) return { text: `⚠ ${t("sla_warning")}: ${minutes} min ${t("left")}`, cls: "warn" };
  return { text: `${minutes} min ${t("left")}`, cls: "ok" };
}

// --- login --------------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const answer = await api("/auth/login", {
      method: "POST", json: { email: form.email.value, password: form.password.value },
    });
    state.token = answer.token;
    sessionStorage.setItem("helpdesk.token", state.token);
    await start();
    // The login form is gone: the keyboard continues at the top of the content.
    document.getElementById("main").focus();
  } catch {
    document.getElementById("login-error").textContent = t("login_failed");
  }
}

async function logout() {
  stopStreams();
  if (state.token) { try { await fetch("/auth/logout", { method: "POST",
    headers: { Authorization: `Bearer ${state.token}` } }); } catch { /* offline */ } }
  state.token = null;
  sessionStorage.removeItem("helpdesk.token");
  document.getElementById("top").hidden = true;
  document.getElementById("app").hidden = true;
  document.getElementById("login").hidden = false;
}

// --- views --------------------------------------------------------------------------------

const VIEWS = {
  mine: { assignee: "me", status: ["new", "open", "pending", "on_hold"] },
  unassigned: { assignee: "unassigned", status: ["new", "open"] },
  open: { status: ["new", "open"] },
  pending: { status: ["pending"] },
  breached: { sla: "breached" },
  at_risk: { sla: "at_risk" },
};

function renderNav() {
  const nav = document.getElementById("views");
  const hadFocus = nav.contains(document.activeElement);
  nav.replaceChildren();
  const names = [...Object.keys(VIEWS)];
  if (["supervisor", "admin"].includes(state.me.role)) names.push("board");
  for (const name of names) {
    nav.append(el("a", { href: `#${name}`, "aria-current": state.view === name ? "page" : null,
      onclick: (e) => { e.preventDefault(); show(name); } }, t(name)));
  }
  // Choosing a view keeps the keyboard focus on it (the links were just re-made).
  if (hadFocus) nav.querySelector('a[aria-current="page"]')?.focus();
}

function show(view) {
  state.view = view;
  state.cursor = null;
  state.breached = null;
  renderNav();
  stopStreams();
  if (view === "board") return renderBoard();
  renderQueue();
}

function queueParams(cursor, limit = PAGE) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(VIEWS[state.view])) {
    for (const item of [].concat(value)) params.append(key, item);
  }
  if (state.q) params.set("q", state.q);
  params.set("limit", String(limit));
  if (cursor) params.set("cursor", cursor);
  return params;
}

// One row per ticket. The subject is a real link: Tab reaches it, Enter opens the ticket,
// and screen readers announce it as something to activate; a click anywhere on the row
// opens it too.
function row(ticket, fresh) {
  const due = timeLeft(ticket.next_sla_due_at, ticket.next_sla_warn_at);
  const link = el("a", { href: `#ticket-${ticket.id}`, class: "open-ticket", "data-open": ticket.id,
    "aria-current": state.ticketId === ticket.id ? "true" : null,
    onclick: (e) => { e.preventDefault(); openTicket(ticket.id); } }, ticket.subject);
  return el("tr", { "data-ticket": ticket.id,
      class: [fresh ? "new-row" : "", state.ticketId === ticket.id ? "selected" : ""].join(" ").trim() || null,
      onclick: (e) => { if (!e.target.closest("a")) openTicket(ticket.id); } },
    el("td", {}, `#${ticket.number}`),
    el("td", {}, link, fresh ? el("span", { class: "badge fresh" }, ` ${t("new_tickets")}`) : null),
    el("td", {}, el("span", { class: `badge ${ticket.channel}` }, ticket.channel)),
    el("td", {}, ticket.status),
    el("td", {}, ticket.priority),
    el("td", { class: `clock ${due.cls}` }, due.text));
}

async function renderQueue() {
  const app = document.getElementById("app");
  const search = el("input", { type: "search", placeholder: t("search"), value: state.q, id: "search" });
  const form = el("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault(); state.q = search.value.trim(); renderQueue(); } },
    el("label", { for: "search", class: "sr-only" }, t("search")),
    search, el("button", { type: "submit" }, t("search")), el("span", { class: "muted" }, `● ${t("live")}`));
  const body = el("tbody", { id: "queue" });
  const caption = el("caption", { class: "sr-only", id: "queue-caption" }, t(state.view));
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
  state.cursor = null;
  await loadPage(body, more, count, true);
  stream("/tickets/stream", (kind, change) => onTicketChange(change, body, more, count));
  if (state.ticketId) openTicket(state.ticketId, { quiet: true });
}

function showCount(body, count) {
  count.textContent = t("next_page", { n: body.querySelectorAll("tr[data-ticket]").length });
}

// Keyset pages of PAGE rows: thousands of tickets never load at once. Keyboard focus moves
// to the first newly loaded ticket, so "Load more" does not leave the agent at the bottom.
async function loadPage(body, more, count, first = false) {
  let page;
  try { page = await api(`/tickets?${queueParams(first ? null : state.cursor)}`); }
  catch (error) { toast(error.message, true); return; }
  if (first) body.replaceChildren();
  const rows = page.items.map((ticket) => row(ticket, false));
  body.append(...rows);
  if (first && !page.items.length) body.append(el("tr", {}, el("td", { colspan: "6" }, t("nothing"))));
  state.cursor = page.next_cursor;
  more.hidden = !page.next_cursor;
  showCount(body, count);
  if (!first && rows.length) rows[0].querySelector("a.open-ticket").focus();
}

// A change arrives: re-read as many rows as are shown (so loaded pages stay and the cursor
// stays right), mark rows that were not there before and say so to screen readers.
let refreshTimer = null;
function onTicketChange(change, body, more, count) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    const known = new Set([...body.querySelectorAll("tr[data-ticket]")].map((r) => r.dataset.ticket));
    const focused = document.activeElement?.dataset?.open;
    const items = [];
    const want = Math.max(known.size, PAGE);
    let cursor = null;
    try {
      do {
        const page = await api(`/tickets?${queueParams(cursor, Math.min(100, want - items.length))}`);
        items.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor && items.length < want);
    } catch { return; }
    if (!document.body.contains(body)) return;
    const fresh = items.filter((ticket) => !known.has(String(ticket.id)));
    body.replaceChildren(...items.map((ticket) => row(ticket, fresh.includes(ticket))));
    if (!items.length) body.append(el("tr", {}, el("td", { colspan: "6" }, t("nothing"))));
    state.cursor = cursor;
    more.hidden = !cursor;
    showCount(body, count);
    if (focused) body.querySelector(`a[data-open="${focused}"]`)?.focus();
    if (fresh.length) announce(`${t("new_tickets")}: ${fresh.map((x) => `#${x.number} ${x.subject}`).join(", ")}`);
    if (state.ticketId === change.ticket_id) openTicket(change.ticket_id, { quiet: true });
  }, 300);
}

// --- the ticket -----------------------------------------------------------------------------

// Re-rendering a ticket (after a save, or because it changed live) must not throw away what
// the agent is typing, which panels are open, nor where the keyboard focus is.
function keepDrafts(box, ticketId) {
  const same = box.dataset.ticket === String(ticketId);
  const drafts = same ? [...box.querySelectorAll("[data-draft]")].map((c) => [c.id, c.value]) : [];
  const active = box.contains(document.activeElement) ? document.activeElement : null;
  const focus = same && active && active.id ? active.id : null;
  const opened = same ? [...box.querySelectorAll("details[open][id]")].map((d) => d.id) : [];
  return () => {
    for (const id of opened) document.getElementById(id)?.setAttribute("open", "");
    for (const [id, value] of drafts) { const c = document.getElementById(id); if (c && value) c.value = value; }
    if (focus) document.getElementById(focus)?.focus();
  };
}

async function openTicket(id, { quiet = false } = {}) {
  state.ticketId = id;
  for (const r of document.querySelectorAll("#queue tr.selected")) r.classList.remove("selected");
  for (const a of document.querySelectorAll("#queue a[aria-current]")) a.removeAttribute("aria-current");
  const selected = document.querySelector(`#queue tr[data-ticket="${id}"]`);
  if (selected) {
    selected.classList.add("selected");
    selected.querySelector("a.open-ticket")?.setAttribute("aria-current", "true");
  }
  let detail; let sla; let templates;
  try {
    [detail, sla, templates] = await Promise.all([
      api(`/tickets/${id}`), api(`/tickets/${id}/sla`), api(`/templates/for-ticket/${id}`)]);
  } catch (error) { toast(error.message, true); return; }
  const profile = await api(`/customers/${detail.ticket.customer_id}`).catch(() => null);
  const box = document.getElementById("detail");
  if (!box || state.ticketId !== id) return;
  const restore = keepDrafts(box, id);
  const ticket = detail.ticket;
  const heading = el("h2", { id: "ticket-heading", tabindex: "-1" }, `#${ticket.number} ${ticket.subject}`);
  box.dataset.ticket = String(id);
  box.removeAttribute("aria-label");
  box.setAttribute("aria-labelledby", "ticket-heading");
  box.replaceChildren(
    heading,
    el("p", {}, el("a", { href: `#ticket-${id}`, id: "back-to-queue", onclick: (e) => {
      e.preventDefault();
      (document.querySelector(`#queue a[data-open="${id}"]`) || document.getElementById("search"))?.focus();
    } }, `← ${t("back_to_queue")}`)),
    el("p", {}, el("span", { class: `badge ${ticket.channel}` }, ticket.channel), " ",
      `${t("status")}: ${ticket.status} · ${t("priority")}: ${ticket.priority} · ${t("category")}: ${ticket.category || "–"}`,
      ticket.language ? ` · ${t("customer_language")}: ${ticket.language}` : ""),
    slaPanel(sla), customerPanel(detail.customer, profile), csatPanel(detail.csat),
    el("section", { "aria-label": t("conversation"), id: "conversation" }, ...detail.messages.map(messageView)),
    replyForm(ticket, templates), fieldsForm(ticket), extraActions(ticket, detail.customer, profile),
    el("details", { id: "event-log" }, el("summary", {}, t("events")),
      el("ul", {}, ...detail.events.map((e) => el("li", {}, `${when(e.created_at)} ${e.action} ${e.reason || ""}`)))),
  );
  restore();
  if (!quiet) heading.focus();
}

function slaPanel(sla) {
  const items = sla.clocks.map((clock) => {
    let text; let cls;
    if (clock.met_at) {
      text = clock.breached ? `✖ ${t("met_late")} ${when(clock.met_at)}` : `✓ ${t("met")} ${when(clock.met_at)}`;
      cls = clock.breached ? "bad" : "ok";
    } else if (clock.paused) { text = t("paused"); cls = ""; }
    else { const left = timeLeft(clock.due_at, clock.warn_at); text = left.text; cls = left.cls; }
    return el("li", { class: `clock ${cls}`, "data-clock": clock.clock, "data-met": clock.met_at ? "yes" : "no" },
      `${t(clock.clock)}: ${text}`);
  });
  return el("section", { class: "panel", "aria-label": t("sla") }, el("strong", {}, `${t("sla")} (${sla.policy || "–"})`),
    el("ul", { id: "sla-clocks" }, ...items));
}

function customerPanel(customer, profile) {
  const identities = profile ? profile.identities.map((i) => `${i.channel}: ${i.display_name || i.external_id}`) : [];
  const recent = profile ? profile.tickets.slice(0, 5) : [];
  return el("section", { class: "panel", "aria-label": t("customer") },
    el("strong", {}, `${t("customer")}: ${customer.name || customer.email || customer.id}`),
    el("div", {}, [customer.email, customer.phone].filter(Boolean).join(" · ")),
    identities.length ? el("div", { class: "muted" }, identities.join(" · ")) : null,
    recent.length ? el("div", { class: "muted" }, recent.map((r) => `#${r.number} ${r.status}`).join(" · ")) : null,
    el("div", {}, `${t("stage")}: ${customer.lifecycle_stage}`,
      customer.csat_average ? ` · ${t("csat")}: ${customer.csat_average.toFixed(1)}` : ""),
    customer.at_risk ? el("div", { class: "risk" }, `⚠ ${t("at_risk_flag")}: ${customer.at_risk_reasons.join("; ")}`) : null);
}

// The ticket's satisfaction survey: the rating and, as text, what the customer wrote.
function csatPanel(csat) {
  if (!csat) return null;
  const answered = csat.rating !== null && csat.rating !== undefined;
  const said = answered ? `${t("csat_rating")}: ${csat.rating}/5`
    : csat.status === "sent" ? t("csat_waiting") : `${t("csat_not_asked")}${csat.reason ? ` (${csat.reason})` : ""}`;
  return el("section", { class: "panel", id: "ticket-csat", "aria-label": t("csat") },
    el("strong", {}, t("csat")), " ", el("span", { id: "csat-rating" }, said),
    csat.comment ? el("blockquote", { id: "csat-comment", "aria-label": t("csat_comment") }, csat.comment) : null);
}

// A reply that failed for good can be sent again; it then counts as the response from now.
async function retryDelivery(message) {
  try {
    await api(`/tickets/${message.ticket_id}/messages/${message.id}/retry`, { method: "POST" });
    toast(t("saved"));
    openTicket(message.ticket_id, { quiet: true });
  } catch (error) { toast(error.message, true); }
}

// Notes differ from replies in words ("Internal note"), border and background, not colour.
function messageView(message) {
  const cls = message.kind === "note" ? "note" : message.direction;
  return el("article", { class: `message ${cls}`, "data-message": message.id, "data-kind": message.kind },
    el("div", { class: "meta" }, el("span", { class: `badge ${message.channel}` }, message.channel), " ",
      when(message.created_at), " ",
      message.kind === "note" ? el("strong", { class: "note-label" }, t("note")) : "",
      message.internal_only ? ` · ${t("internal_only")}` : "",
      message.delivery_status === "failed"
        ? el("span", { class: "failed" }, ` · ✖ ${t("delivery_failed")}: ${message.delivery_error} `,
          el("button", { type: "button", class: "retry", "data-retry": message.id,
            onclick: () => retryDelivery(message) }, t("retry"))) : ""),
    el("div", { class: "body" }, message.body_text),
    message.attachments.length ? el("div", { class: "meta" }, `${t("attachments")}: `,
      ...message.attachments.map((a) => el("a", { href: "#", onclick: (e) => { e.preventDefault(); download(a); } },
        `${a.filename} `))) : null);
}

async function download(attachment) {
  const response = await api(`/attachments/${attachment.id}`);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: attachment.filename });
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function replyForm(ticket, templates) {
  const text = el("textarea", { id: "reply-text", rows: "4", required: true, "data-draft": true });
  const canned = el("select", { id: "canned", onchange: (e) => {
      const chosen = templates.find((x) => String(x.id) === e.target.value);
      if (chosen) text.value = chosen.text;
    } }, el("option", { value: "" }, `— ${t("canned")} —`),
    ...templates.map((x) => el("option", { value: x.id }, x.name)));
  const internal = el("input", { type: "checkbox", id: "internal-only" });
  const send = async (kind) => {
    if (!text.value.trim()) { text.focus(); return; }
    const body = { text: text.value };
    if (kind === "notes" && internal.checked) body.internal_only = true;
    try {
      await api(`/tickets/${ticket.id}/${kind}`, { method: "POST", json: body,
        headers: { "Idempotency-Key": crypto.randomUUID() } });
      text.value = "";
      toast(t("saved"));
      openTicket(ticket.id, { quiet: true });
    } catch (error) { toast(error.message, true); }
  };
  return el("form", { class: "panel inline", onsubmit: (e) => { e.preventDefault(); send("replies"); } },
    templates.length ? field("canned", canned) : null,
    el("label", { for: "reply-text" }, `${t("reply")} / ${t("note")}`), text,
    el("div", { class: "actions" }, el("button", { type: "submit", id: "send-reply" }, t("reply")), " ",
      el("button", { type: "button", id: "send-note", onclick: () => send("notes") }, t("note")), " ",
      el("label", {}, internal, ` ${t("internal_only")}`)));
}

function options(values, current, labels = {}) {
  return values.map(([value, label]) => el("option", { value, selected: String(value) === String(current ?? "") },
    labels[value] || label));
}

function fieldsForm(ticket) {
  const select = (name, values, current, extra = []) => el("select", { name, id: `field-${name}` },
    ...options([...extra, ...values.map((v) => [v, v])], current));
  const status = select("status", ["new", "open", "pending", "on_hold", "solved", "closed"], ticket.status);
  const priority = select("priority", ["low", "normal", "high", "urgent"], ticket.priority);
  const category = select("category", ["complaint", "order", "return", "question", "other"], ticket.category,
    [["", t("no_category")]]);
  // Names from GET /agents and /groups when the caller may list them; ids otherwise.
  const assignee = state.agents.length
    ? el("select", { name: "assignee", id: "field-assignee" }, ...options(
      [["", t("nobody")], ...state.agents.map((a) => [a.id, a.name])], ticket.assignee_id))
    : el("input", { name: "assignee", id: "field-assignee", size: "6", inputmode: "numeric", value: ticket.assignee_id ?? "" });
  const group = state.groups.length
    ? el("select", { name: "group", id: "field-group" }, ...options(
      [["", t("no_group")], ...state.groups.map((g) => [g.id, g.name])], ticket.group_id))
    : el("input", { name: "group", id: "field-group", size: "6", inputmode: "numeric", value: ticket.group_id ?? "" });
  const tags = el("input", { name: "tags", id: "field-tags", value: ticket.tags.join(" ") });
  const save = async (e) => {
    e.preventDefault();
    const changes = { status: status.value, priority: priority.value, category: category.value || null,
      assignee_id: assignee.value ? Number(assignee.value) : null,
      group_id: group.value ? Number(group.value) : null,
      tags: tags.value.split(/[\s,]+/).filter(Boolean) };
    try {
      await api(`/tickets/${ticket.id}`, { method: "PATCH", json: changes,
        headers: { "If-Match": `"${ticket.version}"` } });
      toast(t("updated"));
      openTicket(ticket.id, { quiet: true });
    } catch (error) { toast(error.message, true); }
  };
  return el("form", { class: "panel filters", onsubmit: save },
    field("status", status), field("priority", priority), field("category", category),
    field("assignee", assignee), field("group", group), field("tags", tags),
    el("button", { type: "submit", id: "save-fields" }, t("save")));
}

function extraActions(ticket, customer, profile) {
  const reason = el("input", { id: "escalate-reason", "data-draft": true });
  const escalate = el("form", { class: "filters", id: "escalate-form", onsubmit: async (e) => {
    e.preventDefault();
    try { await api(`/tickets/${ticket.id}/escalate`, { method: "POST", json: { reason: reason.value } });
      toast(t("updated")); openTicket(ticket.id, { quiet: true }); } catch (error) { toast(error.message, true); } } },
  field("reason", reason), el("button", { type: "submit" }, t("escalate")));

  const direction = el("select", { id: "call-direction" },
    el("option", { value: "inbound" }, t("inbound")), el("option", { value: "outbound" }, t("outbound")));
  const phone = el("input", { id: "call-phone", type: "tel", required: true, value: customer.phone || "",
    "data-draft": true });
  const minutes = el("input", { id: "call-minutes", type: "number", min: "0", max: "600", value: "1", required: true });
  const summary = el("textarea", { id: "call-summary", rows: "2", required: true, "data-draft": true });
  const internal = el("input", { type: "checkbox", id: "call-internal" });
  const call = el("form", { class: "inline", id: "call-form", onsubmit: async (e) => {
    e.preventDefault();
    const seconds = Math.round(Number(minutes.value) * 60);
    try {
      await api(`/tickets/${ticket.id}/calls`, { method: "POST", json: { direction: direction.value,
        phone: phone.value, summary: summary.value, duration_seconds: seconds, public: !internal.checked,
        started_at: new Date(Date.now() - seconds * 1000).toISOString() },
      headers: { "Idempotency-Key": crypto.randomUUID() } });
      summary.value = "";
      toast(t("saved")); openTicket(ticket.id, { quiet: true });
    } catch (error) { toast(error.message, true); } } },
  el("div", { class: "filters" }, field("direction", direction), field("phone", phone), field("duration_min", minutes)),
  field("summary", summary), el("label", {}, internal, ` ${t("call_internal")}`),
  el("div", {}, el("button", { type: "submit", id: "log-call" }, t("log_call"))));

  // Merge into the customer's other open tickets (offered by number) or into any ticket
  // by the number an agent types (found with GET /tickets?number=, in the agent's scope).
  const others = profile ? profile.tickets.filter((x) => x.id !== ticket.id && !["closed"].includes(x.status)) : [];
  const into = others.length
    ? el("select", { id: "merge-into" }, ...others.map((x) => el("option", { value: x.id }, `#${x.number} ${x.subject} (${x.status})`)))
    : null;
  const number = el("input", { id: "merge-number", inputmode: "numeric", size: "10", placeholder: "#10042", autocomplete: "off" });
  const merge = el("form", { class: "filters", id: "merge-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      let target = null;
      const typed = number.value.trim().replace(/^#/, "");
      if (typed) {
        if (!/^[0-9]{1,18}$/.test(typed)) throw new Error(t("no_such_ticket"));
        const page = await api(`/tickets?number=${typed}&limit=1`);
        if (!page.items.length || page.items[0].id === ticket.id) throw new Error(t("no_such_ticket"));
        target = page.items[0].id;
      } else if (into) {
        target = Number(into.value);
      } else {
        throw new Error(t("no_such_ticket"));
      }
      await api(`/tickets/${ticket.id}/merge`, { method: "POST", json: { into_ticket_id: target },
        headers: { "Idempotency-Key": crypto.randomUUID() } });
      toast(t("merged"));
      openTicket(target);
    } catch (error) { toast(error.message, true); } } },
  into ? field("merge_target", into) : null, field("ticket_number", number),
  el("button", { type: "submit", id: "merge" }, t("merge")));

  const section = (key, form) => el("fieldset", {}, el("legend", {}, t(key)), form);
  return el("details", { class: "panel", id: "more-actions" },
    el("summary", {}, `${t("escalate")} · ${t("log_call")} · ${t("merge")}`),
    section("escalate", escalate), section("log_call", call), section("merge", merge));
}

// --- the supervisors' board -------------------------------------------------------------

// Periods are midnights in the SLA time zone, sent as instants; noon of that day, read in
// UTC, names the right date for any zone within ±12 hours of UTC.
function day(iso) {
  return new Date(new Date(iso).getTime() + 12 * 3600e3)
    .toLocaleDateString(language(), { day: "numeric", month: "numeric", timeZone: "UTC" });
}

function niceMax(value) {
  for (const step of [5, 10, 15, 30, 60, 90, 120, 180, 240, 360, 480, 720, 1440]) if (value <= step) return step;
  return Math.ceil(value / 1440) * 1440;
}

// A bar chart as inline SVG: one group of bars per day, one bar per series. Series differ
// by fill style (solid, outlined) as well as colour; the SVG is an image whose title and
// description carry the summary, and a table beside it carries every number.
function barChart({ id, title, desc, days, series, max, unit, table }) {
  const width = 640; const height = 220; const left = 44; const bottom = 28; const top = 10;
  const plotW = width - left - 8; const plotH = height - top - bottom;
  const slot = plotW / Math.max(days.length, 1);
  const barW = Math.max(2, Math.min(22, (slot * 0.8) / series.length));
  const y = (value) => top + plotH - (plotH * Math.min(value, max)) / max;
  const grid = [0, max / 2, max].map((v) => svg("g", { class: "tick" },
    svg("line", { x1: left, x2: width - 8, y1: y(v), y2: y(v) }),
    svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, `${Math.round(v)}${unit}`)));
  const every = Math.ceil(days.length / 10);
  const bars = days.map((d, i) => svg("g", { "data-day": d.period },
    ...series.map((s, j) => {
      const value = s.value(d);
      if (value === null || value === undefined) return null;
      const x = left + i * slot + (slot - barW * series.length) / 2 + j * barW;
      const h = Math.max(1, top + plotH - y(value));
      return svg("rect", { class: `bar ${s.cls}`, x, y: top + plotH - h, width: barW - 1, height: h },
        svg("title", {}, `${day(d.period)}: ${s.label} ${s.text(d)}`));
    }),
    i % every === 0 ? svg("text", { class: "day", x: left + i * slot + slot / 2, y: height - 8,
      "text-anchor": "middle" }, day(d.period)) : null));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
    "aria-labelledby": `${id}-title ${id}-desc` },
  svg("title", { id: `${id}-title` }, title), svg("desc", { id: `${id}-desc` }, desc), ...grid, ...bars);
  const legend = series.length > 1 ? el("ul", { class: "legend" },
    ...series.map((s) => el("li", {}, el("span", { class: `swatch ${s.cls}`, "aria-hidden": "true" }), s.label))) : null;
  return el("figure", { class: "panel", id },
    el("figcaption", {}, el("strong", {}, title)), chart, legend,
    el("details", {}, el("summary", {}, t("data_table")), table));
}

function dataTable(headers, rows) {
  return el("table", { class: "data" },
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, el("th", { scope: "row" }, cells[0]),
      ...cells.slice(1).map((c) => el("td", {}, c))))));
}

function metricCharts(metrics) {
  const minutes = (s) => (s === null || s === undefined ? null : Math.round(s / 6) / 10);
  const fr = metrics.rows.filter((r) => r.clock === "first_response")
    .map((r) => ({ period: r.period, p50: minutes(r.p50_seconds), p90: minutes(r.p90_seconds) }));
  const byDay = new Map();
  for (const r of metrics.rows) {
    const d = byDay.get(r.period) || { period: r.period, ended: 0, breached: 0 };
    d.ended += r.ended; d.breached += r.breached;
    byDay.set(r.period, d);
  }
  const br = [...byDay.values()].sort((a, b) => new Date(a.period) - new Date(b.period))
    .map((d) => ({ ...d, rate: d.ended ? Math.round((1000 * d.breached) / d.ended) / 10 : null }));
  const empty = (id, key) => el("figure", { class: "panel", id }, el("figcaption", {}, el("strong", {}, t(key))),
    el("p", { class: "muted" }, t("no_data")));

  let first;
  if (!fr.length) first = empty("chart-first-response", "chart_fr");
  else {
    const last = fr[fr.length - 1];
    const top = Math.max(...fr.map((d) => d.p90 ?? d.p50 ?? 0));
    first = barChart({
      id: "chart-first-response", title: t("chart_fr"), days: fr, max: niceMax(top), unit: "",
      desc: t("chart_fr_desc", { days: fr.length, from: day(fr[0].period), to: day(last.period),
        last: day(last.period), p50: last.p50 ?? "–", p90: last.p90 ?? "–", max: top }),
      series: [
        { label: "p50", cls: "p50", value: (d) => d.p50, text: (d) => `${d.p50} min` },
        { label: "p90", cls: "p90", value: (d) => d.p90, text: (d) => `${d.p90} min` },
      ],
      table: dataTable([t("day"), "p50 (min)", "p90 (min)"], fr.map((d) => [day(d.period), d.p50 ?? "–", d.p90 ?? "–"])),
    });
  }
  let second;
  if (!br.length) second = empty("chart-breach-rate", "chart_br");
  else {
    const last = br[br.length - 1];
    second = barChart({
      id: "chart-breach-rate", title: t("chart_br"), days: br, max: 100, unit: " %",
      desc: t("chart_br_desc", { days: br.length, from: day(br[0].period), to: day(last.period),
        last: day(last.period), rate: last.rate ?? "–", ended: last.ended,
        max: Math.max(...br.map((d) => d.rate ?? 0)) }),
      series: [{ label: t("breach_rate"), cls: "rate", value: (d) => d.rate, text: (d) => `${d.rate} % (${d.breached}/${d.ended})` }],
      table: dataTable([t("day"), t("breach_rate"), t("breached_count"), t("ended")],
        br.map((d) => [day(d.period), `${d.rate ?? "–"} %`, d.breached, d.ended])),
    });
  }
  return [first, second, el("p", { class: "muted small" }, t("chart_note"))];
}

async function renderBoard() {
  const app = document.getElementById("app");
  let board; let metrics; let risky; let csat;
  try {
    [board, metrics, risky, csat] = await Promise.all([
      api("/sla/board?window_minutes=30"), api("/sla/metrics?period=day"), api("/customers/at-risk"),
      api("/csat/metrics?period=week"),
    ]);
  } catch (error) { toast(error.message, true); return; }
  if (state.view !== "board") return;
  const focused = document.activeElement && app.contains(document.activeElement) ? document.activeElement.id : null;
  const list = (items, kind) => el("ul", {}, ...items.map((i) => el("li", { "data-ticket": i.ticket_id },
    el("a", { href: `#ticket-${i.ticket_id}`, id: `board-${kind}-${i.ticket_id}-${i.clock}`, onclick: (e) => {
      e.preventDefault(); state.ticketId = i.ticket_id; show("open"); } }, `#${i.number} ${i.subject}`),
    ` · ${t(i.clock)} · ${timeLeft(i.due_at).text}`)));
  const names = {
    group: new Map(state.groups.map((g) => [String(g.id), g.name])),
    agent: new Map(state.agents.map((a) => [String(a.id), a.name])),
  };
  const counts = (key, rows, kind) => el("section", { class: "panel" }, el("strong", { id: `count-${key}` }, t(key)),
    rows.length ? el("table", { class: "data", "aria-labelledby": `count-${key}` },
      el("thead", {}, el("tr", {}, ...[t("key"), t("breached"), t("at_risk")].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows.map((r) => el("tr", {},
        el("th", { scope: "row" }, r.key === "none" ? t("none") : (names[kind]?.get(r.key) || r.key)),
        el("td", {}, r.breached), el("td", {}, r.at_risk))))) : el("p", { class: "muted" }, t("nothing")));
  // A breach that was not on the board before is said aloud.
  const ids = board.breached.map((i) => `${i.ticket_id}:${i.clock}`);
  if (state.breached) {
    const fresh = board.breached.filter((i) => !state.breached.has(`${i.ticket_id}:${i.clock}`));
    if (fresh.length) announce(`${t("sla_breached")}: ${fresh.map((i) => `#${i.number} ${i.subject}`).join(", ")}`);
  }
  state.breached = new Set(ids);
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
  if (!state.streams.length) {
    stream("/sla/stream", () => {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => state.view === "board" && renderBoard(), 300);
    });
  }
}

// --- start -------------------------------------------------------------------------------

async function start() {
  try { state.me = await api("/auth/me"); } catch { return logout(); }
  // Names for the assignee and group pickers and the board; a caller who may not list
  // them gets plain id fields instead.
  const [agents, groups] = await Promise.allSettled([api("/agents"), api("/groups")]);
  state.agents = agents.status === "fulfilled" ? agents.value : [];
  state.groups = groups.status === "fulfilled" ? groups.value : [];
  document.getElementById("login").hidden = true;
  document.getElementById("top").hidden = false;
  document.getElementById("app").hidden = false;
  document.getElementById("who").textContent = `${state.me.name} (${state.me.role})`;
  if (state.me.availability) document.getElementById("availability").value = state.me.availability;
  show(state.view);
}

// Keyboard: Tab (or j/k, arrow keys on a ticket) moves through the queue, Enter opens,
// r goes to the reply box, / searches. Letters are left alone while typing.
function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const active = document.activeElement;
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName) || active.isContentEditable;
  const links = [...document.querySelectorAll("#queue a.open-ticket")];
  const at = links.indexOf(active);
  const move = (step) => {
    if (!links.length) return;
    e.preventDefault();
    const next = at < 0 ? (step > 0 ? 0 : links.length - 1) : Math.max(0, Math.min(at + step, links.length - 1));
    links[next].focus();
  };
  if (at >= 0 && e.key === "ArrowDown") move(1);
  else if (at >= 0 && e.key === "ArrowUp") move(-1);
  else if (typing) return;
  else if (e.key === "j") move(1);
  else if (e.key === "k") move(-1);
  else if (e.key === "r" && document.getElementById("reply-text")) {
    e.preventDefault(); document.getElementById("reply-text").focus();
  } else if (e.key === "/" && document.getElementById("search")) {
    e.preventDefault(); document.getElementById("search").focus();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setLanguage(language());
  document.getElementById("ui-language").value = language();
  document.getElementById("ui-language").addEventListener("change", (e) => { setLanguage(e.target.value); show(state.view); });
  document.getElementById("login").addEventListener("submit", login);
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("availability").addEventListener("change", async (e) => {
    try { await api("/agents/me/availability", { method: "PUT", json: { availability: e.target.value } }); toast(t("saved")); }
    catch (error) { toast(error.message, true); }
  });
  document.addEventListener("keydown", onKey);
  if (state.token) start(); else document.getElementById("login").hidden = false;
});
