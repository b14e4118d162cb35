"""Slack message text (mrkdwn) as the plain text an agent reads: pure functions, no I/O.

Slack sends text with control sequences in angle brackets and only three characters
escaped (https://docs.slack.dev/messaging/formatting-message-text): `<@U123>` a user,
`<#C123|general>` a channel, `<!here>` a broadcast, `<!subteam^S123>` a user group,
`<!date^…|fallback>` a date, `<https://…|label>` a link, and `&amp;`, `&lt;`, `&gt;`.
Literal `<` and `>` never occur in such text (they arrive escaped), so every `<…>` is a
control sequence. Emphasis (`*bold*`, `_italic_`, `~strike~`) reads fine as it is.
Forwarded messages carry their text as rich-text blocks; `rich_text` renders those back
into the same mrkdwn form so one function turns both into plain text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_CONTROL = re.compile(r"<([^<>]*)>")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_NO_NAMES: Mapping[str, str] = {}


def unescape(text: str) -> str:
    """Slack escapes only these three in message text (its mrkdwn control characters)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def escape(text: str) -> str:
    """Plain text for `chat.postMessage`: the three characters Slack asks us to escape."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mentioned_users(text: str) -> set[str]:
    """The user ids of `<@U…>` mentions without a label (those need a name looked up)."""
    found = set()
    for match in _CONTROL.finditer(text):
        body = match.group(1)
        if body.startswith("@") and "|" not in body and _USER_ID.match(body[1:]):
            found.add(body[1:])
    return found


def to_text(
    text: str, users: Mapping[str, str] = _NO_NAMES, channels: Mapping[str, str] = _NO_NAMES
) -> str:
    """Readable text: `@Jana Nováková`, `#general`, `@here`, `label (https://…)`, and
    the escapes undone. A user or channel without a label or a known name shows its id."""
    parts: list[str] = []
    position = 0
    for match in _CONTROL.finditer(text):
        parts.append(unescape(text[position : match.start()]))
        parts.append(_control(match.group(1), users, channels))
        position = match.end()
    parts.append(unescape(text[position:]))
    return "".join(parts)


def _control(body: str, users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    target, _, label = body.partition("|")
    label = unescape(label)
    if target.startswith("@"):
        user = target[1:]
        name = label or users.get(user) or user
        return name if name.startswith("@") else f"@{name}"
    if target.startswith("#"):
        channel = target[1:]
        name = label or channels.get(channel) or channel
        return name if name.startswith("#") else f"#{name}"
    if target.startswith("!"):
        command = target[1:]
        if label:
            return label
        if command in ("here", "channel", "everyone"):
            return f"@{command}"
        if command.startswith("subteam^"):
            return "@" + command.removeprefix("subteam^")
        if command.startswith("date^"):  # <!date^epoch^format^link|fallback> without fallback
            return command.split("^")[1] if command.count("^") >= 1 else command
        return f"@{command}"
    url = unescape(target)
    if not label:
        return url.removeprefix("mailto:")
    if label in (url, url.removeprefix("mailto:")) or url.startswith("mailto:"):
        return label
    return f"{label} ({url})"


def rich_text(blocks: Iterable[Any]) -> str:
    """Rich-text blocks (as in a forwarded message's `message_blocks`) as mrkdwn."""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "rich_text":
            lines.append(_elements(block.get("elements") or ()))
        elif isinstance(block, dict) and block.get("type") == "section":
            section = block.get("text")
            if isinstance(section, dict) and isinstance(section.get("text"), str):
                lines.append(section["text"])
    return "\n".join(line for line in lines if line)


def _elements(elements: Iterable[Any]) -> str:
    out: list[str] = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        kind = element.get("type")
        children = element.get("elements") or ()
        if kind == "rich_text_section":
            out.append(_inline(children))
        elif kind == "rich_text_quote":
            out.append("\n".join(f"> {line}" for line in _inline(children).splitlines()))
        elif kind == "rich_text_preformatted":
            out.append(f"```{_inline(children)}```")
        elif kind == "rich_text_list":
            bullet = "1." if element.get("style") == "ordered" else "•"
            out.append("\n".join(f"{bullet} {_elements([item])}" for item in children))
    return "\n".join(out)


def _inline(elements: Iterable[Any]) -> str:
    out: list[str] = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        kind = element.get("type")
        if kind == "text":
            out.append(escape(str(element.get("text", ""))))
        elif kind == "link":
            url = str(element.get("url", ""))
            label = element.get("text")
            out.append(f"<{url}|{escape(str(label))}>" if label else f"<{url}>")
        elif kind == "user":
            out.append(f"<@{element.get('user_id', '')}>")
        elif kind == "channel":
            out.append(f"<#{element.get('channel_id', '')}>")
        elif kind == "usergroup":
            out.append(f"<!subteam^{element.get('usergroup_id', '')}>")
        elif kind == "broadcast":
            out.append(f"<!{element.get('range', 'here')}>")
        elif kind == "emoji":
            out.append(_emoji(element))
    return "".join(out)


def _emoji(element: dict[str, Any]) -> str:
    """The emoji itself when Slack gives its code points, else `:name:`."""
    try:
        return "".join(chr(int(code, 16)) for code in str(element["unicode"]).split("-"))
    except (KeyError, ValueError, OverflowError):
        return f":{element.get('name', '')}:"
