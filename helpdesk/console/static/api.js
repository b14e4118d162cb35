// The API client: the agent's session token (kept in sessionStorage), JSON in and out,
// problem+json errors as `ApiError`, ETags read for If-Match, and server-sent events.

const TOKEN = "helpdesk.token";
let token = sessionStorage.getItem(TOKEN);
let unauthorized = () => {};

export function hasSession() { return Boolean(token); }

export function setToken(value) {
  token = value;
  if (value) sessionStorage.setItem(TOKEN, value); else sessionStorage.removeItem(TOKEN);
}

// Called when the API answers 401: the session ended (expired, logged out elsewhere).
export function onUnauthorized(handler) { unauthorized = handler; }

// An RFC 9457 problem: `message` is its detail (or title, or the status) for the toast.
export class ApiError extends Error {
  constructor(status, problem = {}) {
    super(problem.detail || problem.title || String(status));
    this.status = status;
    this.problem = problem;
  }
}

// `api(path, { method, json, headers, ifMatch })`: the parsed JSON, null for 204, or the
// Response itself for anything else (a download). `ifMatch` is an ETag from `tagged`.
export async function api(path, options = {}) {
  return (await request(path, options)).data;
}

// A GET that also returns the ETag: `{ data, etag }`. Send the ETag back as `ifMatch` with
// a change, and the API refuses it (412) if someone changed the object in between.
export async function tagged(path) {
  return request(path);
}

async function request(path, options = {}) {
  const { json, ifMatch, ...init } = options;
  const headers = { ...(init.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  if (ifMatch) headers["If-Match"] = ifMatch;
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401 && path !== "/auth/login") {
    unauthorized();
    throw new ApiError(401, { title: "401" });
  }
  if (!response.ok) {
    let problem = {};
    try { problem = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, problem);
  }
  const etag = response.headers.get("ETag");
  if (response.status === 204) return { data: null, etag };
  const type = response.headers.get("content-type") || "";
  return { data: type.includes("json") ? await response.json() : response, etag };
}

export async function login(email, password) {
  const answer = await api("/auth/login", { method: "POST", json: { email, password } });
  setToken(answer.token);
  return answer;
}

export async function logout() {
  if (token) {
    try { await fetch("/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } }); }
    catch { /* offline */ }
  }
  setToken(null);
}

// Server-sent events over fetch (EventSource cannot send the Authorization header),
// reconnecting with Last-Event-ID. Returns an AbortController: `abort()` ends the stream.
export function stream(path, onEvent) {
  const controller = new AbortController();
  let last = null;
  (async function run() {
    while (!controller.signal.aborted) {
      try {
        const headers = { Authorization: `Bearer ${token}` };
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
      } catch {
        if (controller.signal.aborted) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
  return controller;
}
