"""A job run once a day in the background (retention of audit rows, recordings, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger("archnest.daily")

# The first run waits a minute: start-up (migrations, sources) comes first.
FIRST_DELAY_SECONDS = 60.0
INTERVAL_SECONDS = 24 * 3600.0


@contextlib.asynccontextmanager
async def daily(name: str, job: Callable[[], Awaitable[int]]) -> AsyncIterator[None]:
    """Run ``job`` (it returns how many items it removed) a minute after entering, then
    every day, until the context ends; a failure is logged and tried again next day."""

    async def loop() -> None:
        await asyncio.sleep(FIRST_DELAY_SECONDS)
        while True:
            try:
                gone = await job()
                if gone:
                    log.info("%s: removed %d", name, gone)
            except Exception:
                log.exception("%s failed; trying again tomorrow", name)
            await asyncio.sleep(INTERVAL_SECONDS)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
