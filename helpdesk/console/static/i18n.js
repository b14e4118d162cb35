// Interface texts in Czech, Slovak and English. The customer's language is shown on the
// ticket separately; this is the agent's own choice (stored in the browser).
export const TEXTS = {
  en: {
    skip: "Skip to content", availability: "Availability", online: "online", away: "away",
    offline: "offline", language: "Language", logout: "Log out", login_title: "Log in",
    email: "E-mail", password: "Password", login: "Log in", login_failed: "Wrong e-mail or password",
    mine: "My tickets", unassigned: "Unassigned", open: "All open", pending: "Pending",
    breached: "Breached", at_risk: "At risk", board: "SLA board", search: "Search",
    number: "No.", subject: "Subject", status: "Status", priority: "Priority",
    channel: "Channel", due: "Due", more: "Load more", nothing: "Nothing here",
    reply: "Reply", note: "Internal note", internal_only: "Hide from partner agents",
    send: "Send", save: "Save", category: "Category", assignee: "Assignee (agent id)",
    group: "Group id", tags: "Tags", customer: "Customer", stage: "Stage",
    at_risk_flag: "At risk", csat: "Satisfaction", events: "Event log", sla: "SLA",
    first_response: "First response", next_response: "Next response", resolution: "Resolution",
    left: "left", overdue: "overdue", met: "met", paused: "paused", escalate: "Escalate",
    reason: "Reason", log_call: "Log a phone call", direction: "Direction",
    inbound: "inbound", outbound: "outbound", phone: "Phone", summary: "Summary",
    duration: "Duration (s)", merge: "Merge into ticket", delivery_failed: "Not delivered",
    saved: "Saved", updated: "Updated", live: "live", customer_language: "Customer's language",
    breach_rate: "Breach rate", by_group: "By group", by_agent: "By agent",
    by_channel: "By channel", fr_p50: "First response p50 (min)", fr_p90: "p90",
    at_risk_customers: "At-risk customers", attachments: "Attachments", canned: "Canned reply",
    no_ticket: "Choose a ticket", error: "Something went wrong",
  },
  cs: {
    skip: "Přejít na obsah", availability: "Dostupnost", online: "online", away: "pryč",
    offline: "offline", language: "Jazyk", logout: "Odhlásit", login_title: "Přihlášení",
    email: "E-mail", password: "Heslo", login: "Přihlásit", login_failed: "Špatný e-mail nebo heslo",
    mine: "Moje tikety", unassigned: "Nepřiřazené", open: "Všechny otevřené", pending: "Čekající",
    breached: "Porušené SLA", at_risk: "Ohrožené", board: "SLA přehled", search: "Hledat",
    number: "Č.", subject: "Předmět", status: "Stav", priority: "Priorita",
    channel: "Kanál", due: "Termín", more: "Načíst další", nothing: "Nic tu není",
    reply: "Odpověď", note: "Interní poznámka", internal_only: "Skrýt před partnery",
    send: "Odeslat", save: "Uložit", category: "Kategorie", assignee: "Řešitel (id)",
    group: "Skupina (id)", tags: "Štítky", customer: "Zákazník", stage: "Fáze",
    at_risk_flag: "Ohrožený zákazník", csat: "Spokojenost", events: "Historie", sla: "SLA",
    first_response: "První odpověď", next_response: "Další odpověď", resolution: "Vyřešení",
    left: "zbývá", overdue: "po termínu", met: "splněno", paused: "pozastaveno",
    escalate: "Eskalovat", reason: "Důvod", log_call: "Zapsat telefonát", direction: "Směr",
    inbound: "příchozí", outbound: "odchozí", phone: "Telefon", summary: "Shrnutí",
    duration: "Délka (s)", merge: "Sloučit do tiketu", delivery_failed: "Nedoručeno",
    saved: "Uloženo", updated: "Aktualizováno", live: "živě", customer_language: "Jazyk zákazníka",
    breach_rate: "Podíl porušení", by_group: "Podle skupin", by_agent: "Podle agentů",
    by_channel: "Podle kanálů", fr_p50: "První odpověď p50 (min)", fr_p90: "p90",
    at_risk_customers: "Ohrožení zákazníci", attachments: "Přílohy", canned: "Šablona odpovědi",
    no_ticket: "Vyberte tiket", error: "Něco se nepovedlo",
  },
  sk: {
    skip: "Prejsť na obsah", availability: "Dostupnosť", online: "online", away: "preč",
    offline: "offline", language: "Jazyk", logout: "Odhlásiť", login_title: "Prihlásenie",
    email: "E-mail", password: "Heslo", login: "Prihlásiť", login_failed: "Nesprávny e-mail alebo heslo",
    mine: "Moje tikety", unassigned: "Nepriradené", open: "Všetky otvorené", pending: "Čakajúce",
    breached: "Porušené SLA", at_risk: "Ohrozené", board: "SLA prehľad", search: "Hľadať",
    number: "Č.", subject: "Predmet", status: "Stav", priority: "Priorita",
    channel: "Kanál", due: "Termín", more: "Načítať ďalšie", nothing: "Nič tu nie je",
    reply: "Odpoveď", note: "Interná poznámka", internal_only: "Skryť pred partnermi",
    send: "Odoslať", save: "Uložiť", category: "Kategória", assignee: "Riešiteľ (id)",
    group: "Skupina (id)", tags: "Štítky", customer: "Zákazník", stage: "Fáza",
    at_risk_flag: "Ohrozený zákazník", csat: "Spokojnosť", events: "História", sla: "SLA",
    first_response: "Prvá odpoveď", next_response: "Ďalšia odpoveď", resolution: "Vyriešenie",
    left: "zostáva", overdue: "po termíne", met: "splnené", paused: "pozastavené",
    escalate: "Eskalovať", reason: "Dôvod", log_call: "Zapísať telefonát", direction: "Smer",
    inbound: "prichádzajúci", outbound: "odchádzajúci", phone: "Telefón", summary: "Zhrnutie",
    duration: "Dĺžka (s)", merge: "Zlúčiť do tiketu", delivery_failed: "Nedoručené",
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
}

export function language() { return current; }

export function t(key) { return (TEXTS[current] && TEXTS[current][key]) || TEXTS.en[key] || key; }
