// The console: a thin client of the public API. Everything shown comes from the API with
// the agent's own token (kept in sessionStorage); text is always inserted as text, never
// as HTML, so nothing a customer wrote can run here.
import { language, setLanguage, t } from "/console/i18n.js";

const state = { token: sessionStorage.getItem("helpdesk.token"), me: null, view: "mine",
  cursor: null, q: "", ticketId: null, rows: [], streams: [] };

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

function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.classList.add("show");
  setTimeout(() => box.classList.remove("show"), 2500);
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

function timeLeft(iso) {
  if (!iso) return { text: "", cls: "" };
  const minutes = Math.round((new Date(iso) - Date.now()) / 60000);
  if (minutes < 0) return { text: `${-minutes} min ${t("overdue")}`, cls: "bad" };
  return { text: `${minutes} min ${t("left")}`, cls: minutes <= 15 ? "warn" : "ok" };
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
  nav.replaceChildren();
  const names = [...Object.keys(VIEWS)];
  if (["supervisor", "admin"].includes(state.me.role)) names.push("board");
  for (const name of names) {
    nav.append(el("a", { href: `#${name}`, "aria-current": state.view === name ? "page" : null,
      onclick: (e) => { e.preventDefault(); show(name); } }, t(name)));
  }
}

function show(view) {
  state.view = view;
  state.cursor = null;
  renderNav();
  stopStreams();
  if (view === "board") return renderBoard();
  renderQueue();
}

function queueParams(cursor) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(VIEWS[state.view])) {
    for (const item of [].concat(value)) params.append(key, item);
  }
  if (state.q) params.set("q", state.q);
  params.set("limit", "50");
  if (cursor) params.set("cursor", cursor);
  return params;
}

function row(ticket, fresh) {
  const due = timeLeft(ticket.next_sla_due_at);
  return el("tr", { tabindex: "0", "data-ticket": ticket.id, class: fresh ? "new-row" : null,
      onclick: () => openTicket(ticket.id), onkeydown: (e) => { if (e.key === "Enter") openTicket(ticket.id); } },
    el("td", {}, `#${ticket.number}`),
    el("td", {}, ticket.subject),
    el("td", {}, el("span", { class: `badge ${ticket.channel}` }, ticket.channel)),
    el("td", {}, ticket.status),
    el("td", {}, ticket.priority),
    el("td", { class: `clock ${due.cls}` }, due.text));
}

async function renderQueue() {
  const app = document.getElementById("app");
  const search = el("input", { type: "search", "aria-label": t("search"), placeholder: t("search"),
    value: state.q, id: "search" });
  const form = el("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault(); state.q = search.value.trim(); renderQueue(); } },
    search, el("button", { type: "submit" }, t("search")), el("span", { class: "muted" }, `● ${t("live")}`));
  const body = el("tbody", { id: "queue" });
  const table = el("table", { "aria-label": t(state.view) },
    el("thead", {}, el("tr", {}, ...["number", "subject", "channel", "status", "priority", "due"]
      .map((key) => el("th", { scope: "col" }, t(key))))), body);
  const more = el("button", { type: "button", id: "more", hidden: true, onclick: () => loadPage(body, more) }, t("more"));
  const detail = el("section", { id: "detail", "aria-live": "polite" }, el("p", { class: "muted" }, t("no_ticket")));
  app.replaceChildren(el("div", { class: "layout" }, el("div", {}, form, table, more), detail));
  state.cursor = null;
  await loadPage(body, more, true);
  stream("/tickets/stream", (kind, change) => onTicketChange(change, body));
  if (state.ticketId) openTicket(state.ticketId);
}

async function loadPage(body, more, first = false) {
  const page = await api(`/tickets?${queueParams(first ? null : state.cursor)}`);
  if (first) body.replaceChildren();
  for (const ticket of page.items) body.append(row(ticket, false));
  if (first && !page.items.length) body.append(el("tr", {}, el("td", { colspan: "6" }, t("nothing"))));
  state.cursor = page.next_cursor;
  more.hidden = !page.next_cursor;
}

// A change arrives: re-read the first page and mark rows that were not there before.
let refreshTimer = null;
function onTicketChange(change, body) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    const known = new Set([...body.querySelectorAll("tr[data-ticket]")].map((r) => r.dataset.ticket));
    const page = await api(`/tickets?${queueParams(null)}`);
    body.replaceChildren(...page.items.map((ticket) => row(ticket, !known.has(String(ticket.id)))));
    if (state.ticketId === change.ticket_id) openTicket(change.ticket_id, true);
  }, 300);
}

// --- the ticket -----------------------------------------------------------------------------

async function openTicket(id, quiet = false) {
  state.ticketId = id;
  for (const r of document.querySelectorAll("tr.selected")) r.classList.remove("selected");
  const selected = document.querySelector(`tr[data-ticket="${id}"]`);
  if (selected) selected.classList.add("selected");
  const [detail, sla, templates] = await Promise.all([
    api(`/tickets/${id}`), api(`/tickets/${id}/sla`), api(`/templates/for-ticket/${id}`)]);
  const profile = await api(`/customers/${detail.ticket.customer_id}`).catch(() => null);
  const box = document.getElementById("detail");
  if (!box) return;
  const ticket = detail.ticket;
  box.replaceChildren(
    el("h2", {}, `#${ticket.number} ${ticket.subject}`),
    el("p", {}, el("span", { class: `badge ${ticket.channel}` }, ticket.channel), " ",
      `${t("status")}: ${ticket.status} · ${t("priority")}: ${ticket.priority} · ${t("category")}: ${ticket.category || "–"}`,
      ticket.language ? ` · ${t("customer_language")}: ${ticket.language}` : ""),
    slaPanel(sla), customerPanel(detail.customer, profile),
    el("section", { "aria-label": "conversation" }, ...detail.messages.map(messageView)),
    replyForm(ticket, templates), fieldsForm(ticket), extraActions(ticket),
    el("details", {}, el("summary", {}, t("events")),
      el("ul", {}, ...detail.events.map((e) => el("li", {}, `${when(e.created_at)} ${e.action} ${e.reason || ""}`)))),
  );
  if (!quiet) box.querySelector("h2").focus?.();
}

function slaPanel(sla) {
  const items = sla.clocks.map((clock) => {
    let text; let cls;
    if (clock.met_at) { text = `${t("met")} ${when(clock.met_at)}`; cls = clock.breached ? "bad" : "ok"; }
    else if (clock.paused) { text = t("paused"); cls = ""; }
    else { const left = timeLeft(clock.due_at); text = left.text; cls = left.cls; }
    return el("li", { class: `clock ${cls}`, "data-clock": clock.clock, "data-met": clock.met_at ? "yes" : "no" },
      `${t(clock.clock)}: ${text}`);
  });
  return el("div", { class: "panel", "aria-label": t("sla") }, el("strong", {}, `${t("sla")} (${sla.policy || "–"})`),
    el("ul", { id: "sla-clocks" }, ...items));
}

function customerPanel(customer, profile) {
  const identities = profile ? profile.identities.map((i) => `${i.channel}: ${i.display_name || i.external_id}`) : [];
  const recent = profile ? profile.tickets.slice(0, 5) : [];
  return el("div", { class: "panel", "aria-label": t("customer") },
    identities.length ? el("div", { class: "muted" }, identities.join(" · ")) : null,
    recent.length ? el("div", { class: "muted" }, recent.map((r) => `#${r.number} ${r.status}`).join(" · ")) : null,
    el("strong", {}, `${t("customer")}: ${customer.name || customer.email || customer.id}`),
    el("div", {}, [customer.email, customer.phone].filter(Boolean).join(" · ")),
    el("div", {}, `${t("stage")}: ${customer.lifecycle_stage}`,
      customer.csat_average ? ` · ${t("csat")}: ${customer.csat_average.toFixed(1)}` : ""),
    customer.at_risk ? el("div", { class: "risk" }, `${t("at_risk_flag")}: ${customer.at_risk_reasons.join("; ")}`) : null);
}

function messageView(message) {
  const cls = message.kind === "note" ? "note" : message.direction;
  return el("article", { class: `message ${cls}` },
    el("div", { class: "meta" }, el("span", { class: `badge ${message.channel}` }, message.channel), " ",
      when(message.created_at), " ", message.kind === "note" ? `· ${t("note")}` : "",
      message.delivery_status === "failed"
        ? el("span", { class: "failed" }, ` · ${t("delivery_failed")}: ${message.delivery_error}`) : ""),
    message.body_text,
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
  const text = el("textarea", { id: "reply-text", rows: "4", "aria-label": t("reply"), required: true });
  const canned = el("select", { id: "canned", "aria-label": t("canned"), onchange: (e) => {
      const chosen = templates.find((x) => String(x.id) === e.target.value);
      if (chosen) text.value = chosen.text;
    } }, el("option", { value: "" }, `— ${t("canned")} —`),
    ...templates.map((x) => el("option", { value: x.id }, x.name)));
  const internal = el("input", { type: "checkbox", id: "internal-only" });
  const send = async (kind) => {
    if (!text.value.trim()) return;
    const body = { text: text.value };
    if (kind === "notes" && internal.checked) body.internal_only = true;
    try {
      await api(`/tickets/${ticket.id}/${kind}`, { method: "POST", json: body,
        headers: { "Idempotency-Key": crypto.randomUUID() } });
      text.value = "";
      toast(t("saved"));
      openTicket(ticket.id, true);
    } catch (error) { toast(error.message); }
  };
  return el("form", { class: "panel inline", onsubmit: (e) => { e.preventDefault(); send("replies"); } },
    el("label", { for: "reply-text" }, t("reply")), templates.length ? canned : null, text,
    el("div", {}, el("button", { type: "submit", id: "send-reply" }, t("reply")), " ",
      el("button", { type: "button", onclick: () => send("notes") }, t("note")), " ",
      el("label", {}, internal, ` ${t("internal_only")}`)));
}

function fieldsForm(ticket) {
  const select = (name, values, current) => el("select", { name, "aria-label": t(name) },
    ...values.map((v) => el("option", { value: v, selected: v === current }, v)));
  const status = select("status", ["new", "open", "pending", "on_hold", "solved", "closed"], ticket.status);
  const priority = select("priority", ["low", "normal", "high", "urgent"], ticket.priority);
  const category = select("category", ["complaint", "order", "return", "question", "other"], ticket.category);
  const assignee = el("input", { name: "assignee", "aria-label": t("assignee"), size: "6", value: ticket.assignee_id ?? "" });
  const group = el("input", { name: "group", "aria-label": t("group"), size: "6", value: ticket.group_id ?? "" });
  const tags = el("input", { name: "tags", "aria-label": t("tags"), value: ticket.tags.join(" ") });
  const save = async (e) => {
    e.preventDefault();
    const changes = { status: status.value, priority: priority.value, category: category.value,
      assignee_id: assignee.value ? Number(assignee.value) : null,
      group_id: group.value ? Number(group.value) : null,
      tags: tags.value.split(/[\s,]+/).filter(Boolean) };
    try {
      await api(`/tickets/${ticket.id}`, { method: "PATCH", json: changes,
        headers: { "If-Match": `"${ticket.version}"` } });
      toast(t("updated"));
      openTicket(ticket.id, true);
    } catch (error) { toast(error.message); }
  };
  return el("form", { class: "panel filters", onsubmit: save }, status, priority, category, assignee, group, tags,
    el("button", { type: "submit" }, t("save")));
}

function extraActions(ticket) {
  const reason = el("input", { "aria-label": t("reason"), placeholder: t("reason") });
  const escalate = el("form", { class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    try { await api(`/tickets/${ticket.id}/escalate`, { method: "POST", json: { reason: reason.value } });
      toast(t("updated")); } catch (error) { toast(error.message); } } },
  reason, el("button", { type: "submit" }, t("escalate")));
  const phone = el("input", { "aria-label": t("phone"), placeholder: "+420…" });
  const summary = el("input", { "aria-label": t("summary"), placeholder: t("summary") });
  const direction = el("select", { "aria-label": t("direction") },
    el("option", { value: "inbound" }, t("inbound")), el("option", { value: "outbound" }, t("outbound")));
  const call = el("form", { class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api(`/tickets/${ticket.id}/calls`, { method: "POST", json: { direction: direction.value,
        phone: phone.value, summary: summary.value, started_at: new Date().toISOString(),
        duration_seconds: 60 }, headers: { "Idempotency-Key": crypto.randomUUID() } });
      toast(t("saved")); openTicket(ticket.id, true);
    } catch (error) { toast(error.message); } } },
  direction, phone, summary, el("button", { type: "submit" }, t("log_call")));
  const into = el("input", { "aria-label": t("merge"), placeholder: t("merge"), size: "8" });
  const merge = el("form", { class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    try { await api(`/tickets/${ticket.id}/merge`, { method: "POST", json: { into_ticket_id: Number(into.value) },
      headers: { "Idempotency-Key": crypto.randomUUID() } }); toast(t("updated")); }
    catch (error) { toast(error.message); } } }, into, el("button", { type: "submit" }, t("merge")));
  return el("details", { class: "panel" }, el("summary", {}, `${t("escalate")} · ${t("log_call")} · ${t("merge")}`),
    escalate, call, merge);
}

// --- the supervisors' board -------------------------------------------------------------

async function renderBoard() {
  const app = document.getElementById("app");
  const [board, metrics, risky, csat] = await Promise.all([
    api("/sla/board?window_minutes=30"), api("/sla/metrics?period=day"), api("/customers/at-risk"),
    api("/csat/metrics?period=week"),
  ]);
  const list = (items) => el("ul", {}, ...items.map((i) => el("li", { "data-ticket": i.ticket_id },
    el("a", { href: "#", onclick: (e) => { e.preventDefault(); state.ticketId = i.ticket_id; show("open"); } },
      `#${i.number} ${i.subject}`), ` · ${t(i.clock)} · ${timeLeft(i.due_at).text}`)));
  const counts = (title, rows) => el("div", { class: "panel" }, el("strong", {}, title),
    el("ul", {}, ...rows.map((r) => el("li", {}, `${r.key}: ${r.breached} / ${r.at_risk}`))));
  const fr = metrics.rows.filter((r) => r.clock === "first_response");
  const top = Math.max(1, ...fr.map((r) => r.p90_seconds || 0));
  const chart = el("div", { class: "chart", role: "img", "aria-label": `${t("fr_p50")} / ${t("fr_p90")}` },
    ...fr.map((r) => el("div", { class: "bar", title: `${r.period}: p50 ${Math.round((r.p50_seconds || 0) / 60)} min, ${t("breach_rate")} ${Math.round((r.breach_rate || 0) * 100)} %`,
      style: null, "data-height": Math.round(100 * (r.p90_seconds || 0) / top) })));
  for (const bar of chart.children) bar.style.height = `${bar.dataset.height}%`;
  app.replaceChildren(el("div", { class: "layout" },
    el("div", {}, el("h2", {}, `${t("breached")} (${board.breached.length})`), el("div", { id: "board-breached" }, list(board.breached)),
      el("h2", {}, `${t("at_risk")} (${board.at_risk.length})`), list(board.at_risk)),
    el("div", {}, counts(t("by_group"), board.by_group), counts(t("by_agent"), board.by_agent),
      counts(t("by_channel"), board.by_channel),
      el("div", { class: "panel" }, el("strong", {}, t("fr_p50")), chart,
        el("ul", {}, ...fr.map((r) => el("li", {}, `${when(r.period)}: p50 ${Math.round((r.p50_seconds || 0) / 60)} · ${t("fr_p90")} ${Math.round((r.p90_seconds || 0) / 60)} min · ${t("breach_rate")} ${Math.round((r.breach_rate || 0) * 100)} %`)))),
      el("div", { class: "panel", id: "board-csat" }, el("strong", {}, t("csat")),
        el("ul", {}, ...csat.map((r) => el("li", {}, `${when(r.period)}: ${r.average ? r.average.toFixed(2) : "–"} (${r.answered}/${r.sent})`)))),
      el("div", { class: "panel" }, el("strong", {}, t("at_risk_customers")),
        el("ul", {}, ...risky.map((c) => el("li", { class: "risk" }, c.customer.name || c.customer.email || c.customer.id)))))));
  stream("/sla/stream", () => { clearTimeout(refreshTimer); refreshTimer = setTimeout(() => state.view === "board" && renderBoard(), 300); });
}

// --- start -------------------------------------------------------------------------------

async function start() {
  try { state.me = await api("/auth/me"); } catch { return logout(); }
  document.getElementById("login").hidden = true;
  document.getElementById("top").hidden = false;
  document.getElementById("app").hidden = false;
  document.getElementById("who").textContent = `${state.me.name} (${state.me.role})`;
  show(state.view);
}

document.addEventListener("DOMContentLoaded", () => {
  setLanguage(language());
  document.getElementById("ui-language").value = language();
  document.getElementById("ui-language").addEventListener("change", (e) => { setLanguage(e.target.value); show(state.view); });
  document.getElementById("login").addEventListener("submit", login);
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("availability").addEventListener("change", async (e) => {
    try { await api("/agents/me/availability", { method: "PUT", json: { availability: e.target.value } }); toast(t("saved")); }
    catch (error) { toast(error.message); }
  });
  // Keyboard: j/k move through the queue, Enter opens, r goes to the reply box, / searches.
  document.addEventListener("keydown", (e) => {
    if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
    const rows = [...document.querySelectorAll("#queue tr[data-ticket]")];
    const at = rows.indexOf(document.activeElement);
    if (e.key === "j" && rows.length) rows[Math.min(at + 1, rows.length - 1)].focus();
    else if (e.key === "k" && rows.length) rows[Math.max(at - 1, 0)].focus();
    else if (e.key === "r") document.getElementById("reply-text")?.focus();
    else if (e.key === "/") { e.preventDefault(); document.getElementById("search")?.focus(); }
  });
  if (state.token) start(); else document.getElementById("login").hidden = false;
});
