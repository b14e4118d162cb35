"""`helpdesk classify`: category and language of messages, with the service's own classifier.

Stable interface (other tools read it): JSON lines on standard input, each an object

    {"subject": ..., "text": ..., "channel": ..., "sender": optional address}

(`subject`, `channel` and `sender` may be missing or null; other keys are ignored, so the
labelled dataset can be piped in as it is), and for each one JSON line on standard output,

    {"category": ..., "language": ..., "confidence": ..., "reason": ...}

with the confidence rounded to three decimals. Blank lines are skipped. A line that is not
such an object gets one error line on standard error naming its line number and nothing on
standard output; the tool goes on with the next line and exits with status 2 at the end.
Uses the default rules of `helpdesk/routing/classification.toml`; no database, no settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TextIO

import msgspec

from helpdesk.routing.classification_rules import RulesError, default_rules
from helpdesk.routing.classify import classify

PROG = "helpdesk classify"


# Unknown keys are ignored on purpose (unlike API input): callers pipe in records that
# carry their own ids and labels, and the answer does not depend on them.
class MessageIn(msgspec.Struct, frozen=True):
    subject: str | None = None
    text: str | None = None
    channel: str | None = None
    sender: str | None = None


_decoder = msgspec.json.Decoder(MessageIn)
_encoder = msgspec.json.Encoder()


def _lines(stdin: TextIO) -> Iterable[bytes | str]:
    """Bytes when the stream has them, so invalid UTF-8 is one bad line, not a crash."""
    buffer = getattr(stdin, "buffer", None)
    return buffer if buffer is not None else stdin


def main(stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """0 when every line was classified, 2 when any was bad (or the rules are invalid)."""
    try:
        rules = default_rules()
    except RulesError as exc:
        stderr.write(f"{PROG}: {exc}\n")
        return 2
    status = 0
    for number, line in enumerate(_lines(stdin), start=1):
        if not line.strip():
            continue
        try:
            message = _decoder.decode(line)
            if not (message.subject or message.text):
                raise ValueError("the message has neither subject nor text")
        except (msgspec.DecodeError, ValueError) as exc:
            detail = " ".join(str(exc).split())
            stderr.write(f"{PROG}: line {number}: {detail}\n")
            stderr.flush()
            status = 2
            continue
        result = classify(
            rules, message.subject or "", message.text or "", message.channel, message.sender
        )
        answer: dict[str, Any] = {
            "category": result.category,
            "language": result.language,
            "confidence": result.confidence,
            "reason": result.reason,
        }
        stdout.write(_encoder.encode(answer).decode() + "\n")
        stdout.flush()
    return status
