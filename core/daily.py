"""Background jobs run on a schedule: once a day (retention of audit rows, recordings,
...) and every few seconds (the stats collector's and the alert evaluator's rounds)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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


async def repeat(seconds: float, job: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``job`` every ``seconds`` until cancelled, the first run one interval after the
    call (start-up comes first); a run's own time counts in the interval, and a failure
    is logged and the next run comes as usual."""
    await asyncio.sleep(seconds)
    while True:
        started = time.monotonic()
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed: %r", what, exc)
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
