"""A local SMTP server (aiosmtpd) that accepts every mail and counts it.

Runs as its own process so that neither the worker nor the baseline client shares its
event loop. It appends one line per accepted mail to `--count-file`, so the bench can
check that every delivery arrived exactly once.

    python -m bench.smtp_sink --port PORT --count-file PATH
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class CountingHandler:
    def __init__(self, count_file: Path) -> None:
        self.out = count_file.open("a", buffering=1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipients = ",".join(envelope.rcpt_tos)
        self.out.write(f"{envelope.mail_from} {recipients} {len(envelope.content or b'')}\n")
        return "250 2.0.0 OK"


async def serve(port: int, count_file: Path) -> None:
    handler = CountingHandler(count_file)
    loop = asyncio.get_running_loop()

    def session() -> Any:
        return SMTP(handler, hostname="sink.bench", loop=loop)

    server = await loop.create_server(session, "127.0.0.1", port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.count_file))


if __name__ == "__main__":
    main()
