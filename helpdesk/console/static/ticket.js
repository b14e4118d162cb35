// One ticket: the conversation, SLA clocks, customer and CSAT panels, the reply box, the
// fields form and the rarer actions (escalate, log a call, merge). `openTicket` renders it
// into #detail; a re-render keeps drafts, open panels and the keyboard focus.
import { api, tagged } from "/console/api.js";
import { el, field, options, toast } from "/console/dom.js";
import { t, timeLeft, when } from "/console/i18n.js";
import { session } from "/console/state.js";

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

export async function openTicket(id, { quiet = false } = {}) {
  session.ticketId = id;
  for (const r of document.querySelectorAll("#queue tr.selected")) r.classList.remove("selected");
  for (const a of document.querySelectorAll("#queue a[aria-current]")) a.removeAttribute("aria-current");
  const selected = document.querySelector(`#queue tr[data-ticket="${id}"]`);
  if (selected) {
    selected.classList.add("selected");
    selected.querySelector("a.open-ticket")?.setAttribute("aria-current", "true");
  }
  let read; let sla; let templates;
  try {
    [read, sla, templates] = await Promise.all([
      tagged(`/tickets/${id}`), api(`/tickets/${id}/sla`), api(`/templates/for-ticket/${id}`)]);
  } catch (error) { toast(error.message, true); return; }
  const { data: detail, etag } = read;
  const profile = await api(`/customers/${detail.ticket.customer_id}`).catch(() => null);
  const box = document.getElementById("detail");
  if (!box || session.ticketId !== id) return;
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
    replyForm(ticket, templates), fieldsForm(ticket, etag), extraActions(ticket, detail.customer, profile),
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
  const said = answered ? `${t("csat_rating")}: ${csat.rating}/${session.meta.csat_rating.max}`
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

// `etag` is the one the ticket was read with: a save over someone else's change is refused.
function fieldsForm(ticket, etag) {
  const select = (name, values, current, extra = []) => el("select", { name, id: `field-${name}` },
    ...options([...extra, ...values.map((v) => [v, v])], current));
  // The values come from GET /meta, i.e. from the Literals the API validates with.
  const { meta } = session;
  const status = select("status", meta.ticket_statuses, ticket.status);
  const priority = select("priority", meta.ticket_priorities, ticket.priority);
  const category = select("category", meta.ticket_categories, ticket.category,
    [["", t("no_category")]]);
  // Names from GET /agents and /groups when the caller may list them; ids otherwise.
  const assignee = session.agents.length
    ? el("select", { name: "assignee", id: "field-assignee" }, ...options(
      [["", t("nobody")], ...session.agents.map((a) => [a.id, a.name])], ticket.assignee_id))
    : el("input", { name: "assignee", id: "field-assignee", size: "6", inputmode: "numeric", value: ticket.assignee_id ?? "" });
  const group = session.groups.length
    ? el("select", { name: "group", id: "field-group" }, ...options(
      [["", t("no_group")], ...session.groups.map((g) => [g.id, g.name])], ticket.group_id))
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
        ifMatch: etag || `"${ticket.version}"` });
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
    ...options(session.meta.call_directions.map((d) => [d, t(d)]), null));
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
  const others = profile ? profile.tickets.filter((x) => x.id !== ticket.id && x.status !== "closed") : [];
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

