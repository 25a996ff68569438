"""Sign-in throttling and bounded password-check work.

A flood of guesses must neither get more tries nor make anyone else wait: attempts over
budget are refused at once (429 + Retry-After), never queued, and argon2 runs on a small
executor of its own with a bounded waiting line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from .errors import TooManyRequests, Unauthorized
from .settings import Settings
from .users import verify_password


class RateLimiter:
    """Per-key attempt budget: ``burst`` at once, then one more every ``interval`` seconds.

    The generic cell rate algorithm keeps one float per key (the time at which the key's
    budget is full again), so an idle key costs nothing to forget. At most ``max_keys``
    are remembered: beyond, the least recently charged are dropped first, which costs an
    attacker who sprays keys their own history before anyone else's.
    """

    def __init__(self, burst: int, interval: float, max_keys: int = 100_000):
        self.burst, self.interval, self.max_keys = burst, interval, max_keys
        self._full_at: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._full_at)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may make one more attempt (0: now)."""
        full_at = self._full_at.get(key, now)
        return max(0.0, full_at - now - (self.burst - 1) * self.interval)

    def charge(self, key: str, now: float) -> None:
        full_at = max(self._full_at.pop(key, now), now) + self.interval
        self._full_at[key] = full_at  # re-inserted: dict order is charge order
        oldest = next(iter(self._full_at))
        if self._full_at[oldest] <= now:
            # Idle keys fade out as new charges come, one per charge: cheap, and a
            # quiet server does not keep an attack's keys until the cap is reached.
            del self._full_at[oldest]
        while len(self._full_at) > self.max_keys:
            del self._full_at[next(iter(self._full_at))]

    def refund(self, key: str, now: float) -> None:
        full_at = self._full_at.get(key)
        if full_at is None:
            return
        if full_at - self.interval <= now:
            del self._full_at[key]
        else:
            self._full_at[key] = full_at - self.interval

    def reset(self, key: str) -> None:
        self._full_at.pop(key, None)


class LoginAttempt:
    """One admitted sign-in attempt; the throttle settles it when the attempt ends."""

    def __init__(self, user_key: str, address_key: str):
        self.user_key, self.address_key = user_key, address_key
        self.succeeded = False


class LoginThrottle:
    """Refuses sign-in attempts over budget at once (429 + Retry-After), never queues them.

    Budgets are kept per (username, client address) and per client address, so a flood
    of guesses from one address cannot slow the same username from another address.
    Attempts are charged when admitted, so parallel guesses count like sequential ones;
    a success clears its (username, address) budget and gives back its address charge.
    ``address_concurrency`` caps the password checks one address has in flight (default
    one: a person signs in once at a time), so one client holds at most that many of
    the password-hash workers and a sign-in from elsewhere finds one free. IPv6 clients
    are keyed by their /64, the block one subscriber usually gets.
    """

    def __init__(
        self,
        attempts: int = 5,
        attempt_seconds: float = 30.0,
        address_attempts: int = 20,
        address_attempt_seconds: float = 5.0,
        address_concurrency: int = 1,
        max_keys: int = 100_000,
    ):
        self.per_user = RateLimiter(attempts, attempt_seconds, max_keys)
        self.per_address = RateLimiter(address_attempts, address_attempt_seconds, max_keys)
        self.address_concurrency = address_concurrency
        # Only addresses with an attempt in flight: bounded by open connections.
        self._in_flight: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        return cls(
            attempts=settings.login_attempts,
            attempt_seconds=settings.login_attempt_seconds,
            address_attempts=settings.login_address_attempts,
            address_attempt_seconds=settings.login_address_attempt_seconds,
            address_concurrency=settings.login_address_concurrency,
        )

    @staticmethod
    def address_key(address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if ip.version == 6:
            return str(ipaddress.IPv6Network((ip, 64), strict=False))
        return str(ip)

    @staticmethod
    def user_key(username: str, address_key: str) -> str:
        # No stored name is longer than 64 characters: a longer one needs no key of its
        # own, and capping it keeps a 16 KiB "username" from costing 16 KiB of memory.
        return f"{username.lower()[:65]}|{address_key}"

    def admit(self, username: str, address: str) -> LoginAttempt:
        """Charge one attempt, or raise 429 ``too_many_attempts`` with a Retry-After."""
        now = time.monotonic()
        akey = self.address_key(address)
        ukey = self.user_key(username, akey)
        wait = max(self.per_user.wait(ukey, now), self.per_address.wait(akey, now))
        if wait > 0:
            raise TooManyRequests(
                "too many failed sign-in attempts; try again later",
                code="too_many_attempts",
                retry_after=wait,
            )
        if self._in_flight.get(akey, 0) >= self.address_concurrency:
            raise TooManyRequests(
                "another sign-in from this address is in progress; try again in a moment",
                code="too_many_attempts",
                retry_after=1,
            )
        self.per_user.charge(ukey, now)
        self.per_address.charge(akey, now)
        self._in_flight[akey] = self._in_flight.get(akey, 0) + 1
        return LoginAttempt(ukey, akey)

    def settle(self, attempt: LoginAttempt, *, checked: bool = True) -> None:
        """End an attempt: a success clears its budget; ``checked=False`` (the password
        was never checked, e.g. the hash workers were busy) refunds the charge."""
        now = time.monotonic()
        left = self._in_flight.get(attempt.address_key, 1) - 1
        if left > 0:
            self._in_flight[attempt.address_key] = left
        else:
            self._in_flight.pop(attempt.address_key, None)
        if attempt.succeeded:
            self.per_user.reset(attempt.user_key)
            self.per_address.refund(attempt.address_key, now)
        elif not checked:
            self.per_user.refund(attempt.user_key, now)
            self.per_address.refund(attempt.address_key, now)

    @contextlib.contextmanager
    def attempt(self, username: str, address: str) -> Iterator[LoginAttempt]:
        """Admit an attempt for its duration; mark ``succeeded`` on the way out."""
        attempt = self.admit(username, address)
        checked = True
        try:
            yield attempt
        except Unauthorized:
            raise  # a wrong pair: the one outcome that is charged
        except Exception:
            # The password was never judged (hash workers busy, the database away): an
            # outage must not lock the real user out once it is over.
            checked = False
            raise
        finally:
            self.settle(attempt, checked=checked)


class PasswordWorkBusy(TooManyRequests):
    """Every password-hash worker is busy and the waiting line is full."""


class PasswordVerifier:
    """argon2 verification on a small executor of its own, with a bounded waiting line.

    argon2 is deliberately slow, memory-hard CPU work. On the default executor a burst
    of logins (an anonymous, public route) would take every thread that DNS lookups,
    file reads and other ``to_thread`` work need; unbounded, it would queue for minutes.
    Here at most ``workers`` run and ``queue`` wait; beyond that the check is refused at
    once (429) instead of waiting.
    """

    def __init__(self, workers: int = 2, queue: int = 8):
        self.workers, self.queue = workers, queue
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0  # submitted and not finished; only touched on the event loop

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordVerifier:
        return cls(settings.password_hash_workers, settings.password_hash_queue)

    @property
    def pending(self) -> int:
        return self._pending

    async def cleanup_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        """The executor lives as long as the app (an aiohttp cleanup context)."""
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="archnest-argon2")
        try:
            yield
        finally:
            executor, self._executor = self._executor, None
            # Waiting checks are dropped; a running one ends within one hash time.
            executor.shutdown(wait=True, cancel_futures=True)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """``verify_password`` off the event loop; 429 ``login_busy`` when saturated."""
        if self._executor is None:
            raise RuntimeError("PasswordVerifier used outside its cleanup context")
        if self._pending >= self.workers + self.queue:
            raise PasswordWorkBusy(
                "too many sign-ins are being checked; try again in a moment",
                code="login_busy",
                retry_after=1,
            )
        loop = asyncio.get_running_loop()
        future = self._executor.submit(verify_password, password_hash, password)
        self._pending += 1
        # Counted until the work itself ends, not until the caller stops waiting: a
        # client that disconnects does not free a worker that is still hashing.
        future.add_done_callback(lambda _f: loop.call_soon_threadsafe(self._finished))
        return await asyncio.wrap_future(future)

    def _finished(self) -> None:
        self._pending -= 1


__all__ = ["LoginAttempt", "LoginThrottle", "PasswordVerifier", "PasswordWorkBusy", "RateLimiter"]
