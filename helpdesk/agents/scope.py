"""The one place that decides which tickets a caller may see.

Every read path (list, detail, search, messages, attachments, events, customers,
counts) builds its WHERE clause with `ticket_scope`, so a partner agent can never
reach a ticket outside its groups, whichever endpoint it uses. Group ids are compared
as bigint arrays, never as strings (group "1" does not match "12").
"""

from __future__ import annotations

from helpdesk.agents.models import Principal
from helpdesk.db.sql import Params


def ticket_scope(principal: Principal, params: Params, ticket_alias: str = "t") -> str:
    """SQL predicate limiting `ticket_alias` to the tickets `principal` may see."""
    if not principal.is_partner:
        return "TRUE"
    groups = params.add(list(principal.group_ids))
    return f"({ticket_alias}.group_id = ANY({groups}::bigint[]))"


def may_use_group(principal: Principal, group_id: int | None) -> bool:
    """Whether `principal` may move a ticket into `group_id`."""
    if not principal.is_partner:
        return True
    return group_id is not None and group_id in principal.group_ids
