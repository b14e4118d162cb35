// The console: a thin client of the public API, as native ES modules (no build step).
// This entry module logs in and out, draws the header and switches views; each view
// (queue.js, board.js) renders itself and owns its state, stream and refresh timer, and
// ticket.js shows one ticket. Enumerations come from GET /meta (state.js), never copied.
import * as client from "/console/api.js";
import { mountBoard } from "/console/board.js";
import { el, options, toast } from "/console/dom.js";
import { language, setLanguage, t } from "/console/i18n.js";
import { mountQueue, QUEUE_VIEWS } from "/console/queue.js";
import { clearSession, loadSession, session } from "/console/state.js";

// The roles the API lets read the board (its SUPERVISION guard); others do not see the link.
const BOARD_ROLES = new Set(["supervisor", "admin"]);

let view = "mine";
let mounted = null; // the current view's `{ stop }`

// --- login --------------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const form = event.target;
  try {
    await client.login(form.email.value, form.password.value);
    await start();
    // The login form is gone: the keyboard continues at the top of the content.
    document.getElementById("main").focus();
  } catch {
    document.getElementById("login-error").textContent = t("login_failed");
  }
}

async function logout() {
  mounted?.stop();
  mounted = null;
  await client.logout();
  clearSession();
  document.getElementById("top").hidden = true;
  document.getElementById("app").hidden = true;
  document.getElementById("login").hidden = false;
}

// --- views --------------------------------------------------------------------------------

function renderNav() {
  const nav = document.getElementById("views");
  const hadFocus = nav.contains(document.activeElement);
  nav.replaceChildren();
  const names = [...QUEUE_VIEWS];
  if (BOARD_ROLES.has(session.me.role)) names.push("board");
  for (const name of names) {
    nav.append(el("a", { href: `#${name}`, "aria-current": view === name ? "page" : null,
      onclick: (e) => { e.preventDefault(); show(name); } }, t(name)));
  }
  // Choosing a view keeps the keyboard focus on it (the links were just re-made).
  if (hadFocus) nav.querySelector('a[aria-current="page"]')?.focus();
}

function show(name) {
  view = name;
  renderNav();
  mounted?.stop();
  const app = document.getElementById("app");
  mounted = name === "board"
    // A ticket picked on the board opens in "All open".
    ? mountBoard(app, (id) => { session.ticketId = id; show("open"); })
    : mountQueue(app, name);
}

// --- start -------------------------------------------------------------------------------

async function start() {
  try { await loadSession(); } catch (error) {
    if (error.status !== 401) toast(error.message, true);
    return logout();
  }
  document.getElementById("login").hidden = true;
  document.getElementById("top").hidden = false;
  document.getElementById("app").hidden = false;
  document.getElementById("who").textContent = `${session.me.name} (${session.me.role})`;
  // The availability choices are the API's (GET /meta), labelled in the agent's language.
  const availability = document.getElementById("availability");
  availability.replaceChildren(...options(session.meta.agent_availability.map((a) => [a, t(a)]),
    session.me.availability));
  for (const option of availability.options) option.dataset.i18n = option.value;
  show(view);
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

function init() {
  client.onUnauthorized(logout);
  setLanguage(language());
  document.getElementById("ui-language").value = language();
  document.getElementById("ui-language").addEventListener("change", (e) => {
    setLanguage(e.target.value);
    if (session.me) show(view);
  });
  document.getElementById("login").addEventListener("submit", login);
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("availability").addEventListener("change", async (e) => {
    try {
      await client.api("/agents/me/availability", { method: "PUT", json: { availability: e.target.value } });
      toast(t("saved"));
    } catch (error) { toast(error.message, true); }
  });
  document.addEventListener("keydown", onKey);
  if (client.hasSession()) start(); else document.getElementById("login").hidden = false;
}

// Module scripts run after the document is parsed, so the page is there already.
init();
