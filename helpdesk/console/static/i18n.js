// Interface texts in Czech, Slovak and English, and how dates and SLA times are written.
// The customer's language is shown on the ticket separately; this is the agent's own
// choice (stored in the browser).
export const TEXTS = {
  en: {
    views: "Views", conversation: "Conversation", sla_warning: "At risk", sla_breached: "Breached",
    on_time: "on time", met_late: "met late", new_tickets: "New in the queue", shown: "{n} shown",
    back_to_queue: "Back to the queue",
    shortcuts: "Keys: Tab or j/k move through the queue, Enter opens a ticket, r goes to the reply, / searches.",
    none: "none", nobody: "— nobody —", no_group: "— no group —", no_category: "— none —",
    chart_fr: "First response time per day (minutes)", chart_br: "Breach rate per day",
    chart_fr_desc: "{days} days from {from} to {to}. Latest day {last}: p50 {p50} min, p90 {p90} min. Highest p90 {max} min.",
    chart_br_desc: "{days} days from {from} to {to}. Latest day {last}: {rate} % of {ended} SLA clocks breached. Highest {max} %.",
    chart_note: "A clock counts on the day it stopped; running breaches are listed above.",
    data_table: "Data as a table", day: "Day", ended: "Ended", breached_count: "Breached",
    no_data: "No data in the last 30 days", merged: "Merged", merge_target: "Merge into",
    ticket_id: "Target ticket id", ticket_number: "or ticket number", no_such_ticket: "No other ticket with that number that you can see", duration_min: "Duration (min)", call_internal: "Internal only (a note)",
    key: "Name", sla_events: "SLA change", next_page: "Tickets shown: {n}",
    skip: "Skip to content", availability: "Availability", online: "online", away: "away",
    offline: "offline", language: "Language", logout: "Log out", login_title: "Log in",
    email: "E-mail", password: "Password", login: "Log in", login_failed: "Wrong e-mail or password",
    mine: "My tickets", unassigned: "Unassigned", open: "All open", pending: "Pending",
    breached: "Breached", at_risk: "At risk", board: "SLA board", search: "Search",
    number: "No.", subject: "Subject", status: "Status", priority: "Priority",
    channel: "Channel", due: "Due", more: "Load more", nothing: "Nothing here",
    reply: "Reply", note: "Internal note", internal_only: "Hide from partner agents",
    send: "Send", save: "Save", category: "Category", assignee: "Assignee",
    group: "Group", tags: "Tags", customer: "Customer", stage: "Stage",
    at_risk_flag: "At risk", csat: "Satisfaction", events: "Event log", sla: "SLA",
    first_response: "First response", next_response: "Next response", resolution: "Resolution",
    left: "left", overdue: "overdue", met: "met", paused: "paused", escalate: "Escalate",
    reason: "Reason", log_call: "Log a phone call", direction: "Direction",
    inbound: "inbound", outbound: "outbound", phone: "Phone", summary: "Summary",
    duration: "Duration (s)", merge: "Merge into ticket", delivery_failed: "Not delivered",
    retry: "Send again", csat_rating: "Rating", csat_comment: "Customer's comment",
    csat_waiting: "asked, no answer yet", csat_not_asked: "not asked",
    saved: "Saved", updated: "Updated", live: "live", customer_language: "Customer's language",
    breach_rate: "Breach rate", by_group: "By group", by_agent: "By agent",
    by_channel: "By channel", fr_p50: "First response p50 (min)", fr_p90: "p90",
    at_risk_customers: "At-risk customers", attachments: "Attachments", canned: "Canned reply",
    no_ticket: "Choose a ticket", error: "Something went wrong",
  },
  cs: {
    views: "Pohledy", conversation: "Konverzace", sla_warning: "Hrozí porušení", sla_breached: "Porušeno",
    on_time: "v termínu", met_late: "splněno pozdě", new_tickets: "Nové ve frontě", shown: "zobrazeno {n}",
    back_to_queue: "Zpět do fronty",
    shortcuts: "Klávesy: Tab nebo j/k po frontě, Enter otevře tiket, r přejde na odpověď, / hledá.",
    none: "žádná", nobody: "— nikdo —", no_group: "— bez skupiny —", no_category: "— žádná —",
    chart_fr: "Doba první odpovědi po dnech (minuty)", chart_br: "Podíl porušení SLA po dnech",
    chart_fr_desc: "{days} dní od {from} do {to}. Poslední den {last}: p50 {p50} min, p90 {p90} min. Nejvyšší p90 {max} min.",
    chart_br_desc: "{days} dní od {from} do {to}. Poslední den {last}: porušeno {rate} % z {ended} SLA lhůt. Nejvýše {max} %.",
    chart_note: "Lhůta se počítá v den, kdy skončila; běžící porušení jsou v seznamu výše.",
    data_table: "Data jako tabulka", day: "Den", ended: "Skončilo", breached_count: "Porušeno",
    no_data: "Za posledních 30 dní žádná data", merged: "Sloučeno", merge_target: "Sloučit do",
    ticket_id: "Id cílového tiketu", ticket_number: "nebo číslo tiketu", no_such_ticket: "Jiný tiket s tímto číslem, který smíte vidět, neexistuje", duration_min: "Délka (min)", call_internal: "Jen interně (poznámka)",
    key: "Název", sla_events: "Změna SLA", next_page: "Zobrazené tikety: {n}",
    skip: "Přejít na obsah", availability: "Dostupnost", online: "online", away: "pryč",
    offline: "offline", language: "Jazyk", logout: "Odhlásit", login_title: "Přihlášení",
    email: "E-mail", password: "Heslo", login: "Přihlásit", login_failed: "Špatný e-mail nebo heslo",
    mine: "Moje tikety", unassigned: "Nepřiřazené", open: "Všechny otevřené", pending: "Čekající",
    breached: "Porušené SLA", at_risk: "Ohrožené", board: "SLA přehled", search: "Hledat",
    number: "Č.", subject: "Předmět", status: "Stav", priority: "Priorita",
    channel: "Kanál", due: "Termín", more: "Načíst další", nothing: "Nic tu není",
    reply: "Odpověď", note: "Interní poznámka", internal_only: "Skrýt před partnery",
    send: "Odeslat", save: "Uložit", category: "Kategorie", assignee: "Řešitel",
    group: "Skupina", tags: "Štítky", customer: "Zákazník", stage: "Fáze",
    at_risk_flag: "Ohrožený zákazník", csat: "Spokojenost", events: "Historie", sla: "SLA",
    first_response: "První odpověď", next_response: "Další odpověď", resolution: "Vyřešení",
    left: "zbývá", overdue: "po termínu", met: "splněno", paused: "pozastaveno",
    escalate: "Eskalovat", reason: "Důvod", log_call: "Zapsat telefonát", direction: "Směr",
    inbound: "příchozí", outbound: "odchozí", phone: "Telefon", summary: "Shrnutí",
    duration: "Délka (s)", merge: "Sloučit do tiketu", delivery_failed: "Nedoručeno",
    retry: "Odeslat znovu", csat_rating: "Hodnocení", csat_comment: "Komentář zákazníka",
    csat_waiting: "dotázán, zatím bez odpovědi", csat_not_asked: "nedotázán",
    saved: "Uloženo", updated: "Aktualizováno", live: "živě", customer_language: "Jazyk zákazníka",
    breach_rate: "Podíl porušení", by_group: "Podle skupin", by_agent: "Podle agentů",
    by_channel: "Podle kanálů", fr_p50: "První odpověď p50 (min)", fr_p90: "p90",
    at_risk_customers: "Ohrožení zákazníci", attachments: "Přílohy", canned: "Šablona odpovědi",
    no_ticket: "Vyberte tiket", error: "Něco se nepovedlo",
  },
  sk: {
    views: "Pohľady", conversation: "Konverzácia", sla_warning: "Hrozí porušenie", sla_breached: "Porušené",
    on_time: "v termíne", met_late: "splnené neskoro", new_tickets: "Nové vo fronte", shown: "zobrazené {n}",
    back_to_queue: "Späť do fronty",
    shortcuts: "Klávesy: Tab alebo j/k po fronte, Enter otvorí tiket, r prejde na odpoveď, / hľadá.",
    none: "žiadna", nobody: "— nikto —", no_group: "— bez skupiny —", no_category: "— žiadna —",
    chart_fr: "Čas prvej odpovede po dňoch (minúty)", chart_br: "Podiel porušení SLA po dňoch",
    chart_fr_desc: "{days} dní od {from} do {to}. Posledný deň {last}: p50 {p50} min, p90 {p90} min. Najvyššie p90 {max} min.",
    chart_br_desc: "{days} dní od {from} do {to}. Posledný deň {last}: porušených {rate} % z {ended} SLA lehôt. Najviac {max} %.",
    chart_note: "Lehota sa počíta v deň, keď skončila; bežiace porušenia sú v zozname vyššie.",
    data_table: "Dáta ako tabuľka", day: "Deň", ended: "Skončilo", breached_count: "Porušené",
    no_data: "Za posledných 30 dní žiadne dáta", merged: "Zlúčené", merge_target: "Zlúčiť do",
    ticket_id: "Id cieľového tiketu", ticket_number: "alebo číslo tiketu", no_such_ticket: "Iný tiket s týmto číslom, ktorý smiete vidieť, neexistuje", duration_min: "Dĺžka (min)", call_internal: "Len interne (poznámka)",
    key: "Názov", sla_events: "Zmena SLA", next_page: "Zobrazené tikety: {n}",
    skip: "Prejsť na obsah", availability: "Dostupnosť", online: "online", away: "preč",
    offline: "offline", language: "Jazyk", logout: "Odhlásiť", login_title: "Prihlásenie",
    email: "E-mail", password: "Heslo", login: "Prihlásiť", login_failed: "Nesprávny e-mail alebo heslo",
    mine: "Moje tikety", unassigned: "Nepriradené", open: "Všetky otvorené", pending: "Čakajúce",
    breached: "Porušené SLA", at_risk: "Ohrozené", board: "SLA prehľad", search: "Hľadať",
    number: "Č.", subject: "Predmet", status: "Stav", priority: "Priorita",
    channel: "Kanál", due: "Termín", more: "Načítať ďalšie", nothing: "Nič tu nie je",
    reply: "Odpoveď", note: "Interná poznámka", internal_only: "Skryť pred partnermi",
    send: "Odoslať", save: "Uložiť", category: "Kategória", assignee: "Riešiteľ",
    group: "Skupina", tags: "Štítky", customer: "Zákazník", stage: "Fáza",
    at_risk_flag: "Ohrozený zákazník", csat: "Spokojnosť", events: "História", sla: "SLA",
    first_response: "Prvá odpoveď", next_response: "Ďalšia odpoveď", resolution: "Vyriešenie",
    left: "zostáva", overdue: "po termíne", met: "splnené", paused: "pozastavené",
    escalate: "Eskalovať", reason: "Dôvod", log_call: "Zapísať telefonát", direction: "Smer",
    inbound: "prichádzajúci", outbound: "odchádzajúci", phone: "Telefón", summary: "Zhrnutie",
    duration: "Dĺžka (s)", merge: "Zlúčiť do tiketu", delivery_failed: "Nedoručené",
    retry: "Odoslať znova", csat_rating: "Hodnotenie", csat_comment: "Komentár zákazníka",
    csat_waiting: "opýtaný, zatiaľ bez odpovede", csat_not_asked: "neopýtaný",
    saved: "Uložené", updated: "Aktualizované", live: "naživo", customer_language: "Jazyk zákazníka",
    breach_rate: "Podiel porušení", by_group: "Podľa skupín", by_agent: "Podľa agentov",
    by_channel: "Podľa kanálov", fr_p50: "Prvá odpoveď p50 (min)", fr_p90: "p90",
    at_risk_customers: "Ohrození zákazníci", attachments: "Prílohy", canned: "Šablóna odpovede",
    no_ticket: "Vyberte tiket", error: "Niečo sa nepodarilo",
  },
};

let current = localStorage.getItem("helpdesk.lang") || "cs";

export function setLanguage(code) {
  current = TEXTS[code] ? code : "en";
  localStorage.setItem("helpdesk.lang", current);
  document.documentElement.lang = current;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
}

export function language() { return current; }

// `t("shown", { n: 50 })` fills `{n}` in the text.
export function t(key, values = {}) {
  const text = (TEXTS[current] && TEXTS[current][key]) || TEXTS.en[key] || key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// --- formatting ------------------------------------------------------------------------------

export function when(iso) { return iso ? new Date(iso).toLocaleString(current) : ""; }

// Periods are midnights in the SLA time zone, sent as instants; noon of that day, read in
// UTC, names the right date for any zone within ±12 hours of UTC.
export function day(iso) {
  return new Date(new Date(iso).getTime() + 12 * 3600e3)
    .toLocaleDateString(current, { day: "numeric", month: "numeric", timeZone: "UTC" });
}

// Time left on an SLA clock. The state is said in words ("At risk", "Breached") and
// marked with a symbol, so it never rests on colour alone. `warnIso` is the clock's own
// warning time (the ticket's `next_sla_warn_at` in the queue); without it, 15 minutes.
export function timeLeft(iso, warnIso = null) {
  if (!iso) return { text: "", cls: "" };
  const now = Date.now();
  const minutes = Math.round((new Date(iso) - now) / 60000);
  if (minutes < 0) return { text: `✖ ${t("sla_breached")}: ${-minutes} min ${t("overdue")}`, cls: "bad" };
  const warn = warnIso ? new Date(warnIso) <= now : minutes <= 15;
  if (warn) return { text: `⚠ ${t("sla_warning")}: ${minutes} min ${t("left")}`, cls: "warn" };
  return { text: `${minutes} min ${t("left")}`, cls: "ok" };
}
