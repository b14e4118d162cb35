// What every view shares for the session: who is logged in, the API's enumerations
// (GET /meta: statuses, priorities, categories, ...; never copied here), the names of
// agents and groups, and which ticket is open. Each view keeps the rest to itself.
import { api } from "/console/api.js";

export const session = { me: null, meta: null, agents: [], groups: [], ticketId: null };

// After logging in. /auth/me first: its 401 means the stored token is stale. A caller who
// may not list agents or groups gets plain id fields instead of names.
export async function loadSession() {
  session.me = await api("/auth/me");
  const [meta, agents, groups] = await Promise.allSettled([api("/meta"), api("/agents"), api("/groups")]);
  if (meta.status === "rejected") throw meta.reason;
  session.meta = meta.value;
  session.agents = agents.status === "fulfilled" ? agents.value : [];
  session.groups = groups.status === "fulfilled" ? groups.value : [];
}

export function clearSession() {
  Object.assign(session, { me: null, meta: null, agents: [], groups: [] });
}
