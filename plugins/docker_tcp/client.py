"""One pooled aiodocker client per engine, and translation of engine errors.

Every engine call goes through :func:`engine_errors`, so a refused connection, a TLS
failure, a missing container or an engine conflict become the same ApiErrors with
the same clear messages whichever route made the call.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aiodocker
import aiohttp
from archnest import Conflict, HostError, HostTimeout, NotFound

from .tlsconf import build_ssl_context, client_cert_problem, describe_ssl_error

log = logging.getLogger("archnest.docker_tcp")

SCHEMES = ("unix://", "tcp://", "https://")


@dataclass(frozen=True)
class EngineConfig:
    """Decrypted connection settings of one engine (never serialised or logged)."""

    id: int
    name: str
    url: str
    tls_verify: bool = True
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def __repr__(self) -> str:  # keep key material out of logs and tracebacks
        return f"EngineConfig(id={self.id}, name={self.name!r}, url={self.url!r})"


def validate_url(url: str) -> str:
    """Accept ``unix:///path``, ``tcp://host:port`` or ``https://host:port``."""
    url = (url or "").strip()
    if not url.startswith(SCHEMES):
        raise ValueError("url must start with unix://, tcp:// or https://")
    if url.startswith("unix://"):
        if not url[len("unix://") :].startswith("/"):
            raise ValueError("a unix url needs an absolute socket path: unix:///path")
        return url
    rest = url.split("://", 1)[1].rstrip("/")
    if "@" in rest:
        # user:password@ would be stored in clear, listed by the API and put in errors.
        raise ValueError("credentials in the url are not supported; use tls cert and key")
    host, _, port = rest.rpartition(":")
    if not host or "/" in rest or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("a tcp/https url must be host:port, e.g. tcp://10.0.0.5:2375")
    return url.rstrip("/")


def check_tls_scheme(url: str, has_tls_material: bool) -> None:
    """Refuse TLS material with a ``tcp://`` url, which would talk plain HTTP instead.

    ``tcp://`` means what it means to the docker CLI without ``--tls``: no encryption.
    An admin who stored a CA, certificate or key meant TLS; ignoring it would send the
    engine traffic (and whatever the containers print) in clear without a word.
    """
    if has_tls_material and url.startswith("tcp://"):
        raise ValueError(
            "a tcp:// url is plain, unencrypted HTTP and does not use the tls ca, cert or "
            f"key: use https://{url[len('tcp://') :]} for an engine that speaks TLS, or "
            "remove the tls material"
        )


def make_client(cfg: EngineConfig, connect_timeout: float) -> aiodocker.Docker:
    """An aiodocker client for ``cfg``; the API version is negotiated on first use."""
    # Rows stored before this check existed must not fall back to plain HTTP either.
    check_tls_scheme(cfg.url, bool(cfg.tls_ca or cfg.tls_cert or cfg.tls_key))
    timeout = aiohttp.ClientTimeout(connect=connect_timeout, sock_connect=connect_timeout)
    if cfg.url.startswith("https://"):
        ctx = build_ssl_context(cfg.tls_ca, cfg.tls_cert, cfg.tls_key, cfg.tls_verify)
        return aiodocker.Docker(url=cfg.url, ssl_context=ctx, timeout=timeout)
    if cfg.url.startswith("tcp://"):
        # aiodocker keeps tcp:// verbatim, which aiohttp refuses: plain TCP is http://.
        return aiodocker.Docker(url="http://" + cfg.url[len("tcp://") :], timeout=timeout)
    return aiodocker.Docker(url=cfg.url, timeout=timeout)


class ClientPool:
    """Clients created lazily per engine and reused; replaced when the engine changes."""

    def __init__(self, connect_timeout: float):
        self.connect_timeout = connect_timeout
        self._clients: dict[int, tuple[EngineConfig, aiodocker.Docker]] = {}
        self._lock = asyncio.Lock()

    async def get(self, cfg: EngineConfig) -> aiodocker.Docker:
        entry = self._clients.get(cfg.id)
        if entry is not None and entry[0] == cfg:
            return entry[1]
        async with self._lock:
            entry = self._clients.get(cfg.id)
            if entry is not None and entry[0] == cfg:
                return entry[1]
            if entry is not None:
                await close_quietly(entry[1])
            try:
                client = make_client(cfg, self.connect_timeout)
            except ValueError as exc:
                raise HostError(f"engine {cfg.name!r}: {exc}", code="engine_config") from exc
            self._clients[cfg.id] = (cfg, client)
            return client

    async def drop(self, engine_id: int) -> None:
        entry = self._clients.pop(engine_id, None)
        if entry is not None:
            await close_quietly(entry[1])

    async def close(self) -> None:
        entries, self._clients = list(self._clients.values()), {}
        for _, client in entries:
            await close_quietly(client)


async def close_quietly(client: aiodocker.Docker) -> None:
    try:
        await client.close()
    except Exception as exc:  # closing must never fail a shutdown or an update
        log.debug("closing docker client failed: %r", exc)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop(0)
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        todo += [cur.__cause__, cur.__context__, getattr(cur, "os_error", None)]
        cert_error = getattr(cur, "certificate_error", None)
        if isinstance(cert_error, BaseException):
            todo.append(cert_error)


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by the engine",
    errno.ENOENT: "no such socket",
    errno.EACCES: "permission denied on the socket",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
}


def connection_reason(exc: BaseException) -> str | None:
    """Why a connection failed, or None when ``exc`` is not a connection failure."""
    for cur in _chain(exc):
        # aiohttp's certificate errors subclass ssl errors without their details.
        if isinstance(cur, ssl.SSLError) and not isinstance(cur, aiohttp.ClientError):
            return describe_ssl_error(cur)
    for cur in _chain(exc):
        # aiohttp re-raises socket errors as plain OSError: the errno is what is reliable.
        code = getattr(cur, "errno", None)
        if code in _ERRNO_REASONS:
            return _ERRNO_REASONS[code]
        if isinstance(cur, aiohttp.ServerDisconnectedError):
            return "the engine closed the connection"
    for cur in _chain(exc):
        if isinstance(cur, OSError) and cur.errno is not None:
            return cur.strerror or str(cur)
    return None


_REJECTED = ("client certificate", "closed the connection", "reset", "handshake")


def tls_hint(cfg: EngineConfig, reason: str) -> str:
    """Add what is wrong with our client certificate when the engine dropped us."""
    if not cfg.url.startswith("https://") or not any(w in reason for w in _REJECTED):
        return reason
    problem = client_cert_problem(cfg.tls_cert, cfg.tls_ca)
    if problem is None:
        return reason
    return f"the engine rejected our client certificate: {problem} ({reason})"


@contextmanager
def engine_errors(cfg: EngineConfig, what: str = "") -> Iterator[None]:
    """Translate aiodocker/aiohttp errors of ``cfg`` into the API's errors (docs/api.md)."""
    where = f"cannot connect to engine at {cfg.url}"
    try:
        yield
    except aiodocker.DockerError as exc:
        if exc.status == 900:  # aiodocker's code for "could not connect"
            reason = tls_hint(cfg, connection_reason(exc) or exc.message)
            raise HostError(f"{where}: {reason}", code="engine_unreachable") from None
        message = str(exc.message).strip() or f"engine error {exc.status}"
        if "HTTP request to an HTTPS server" in message:
            # dockerd's answer on its TLS port to a tcp:// (plain HTTP) url.
            raise HostError(
                f"{where}: the engine speaks TLS on this port; use https:// with its CA, "
                "a client certificate and key",
                code="engine_unreachable",
            ) from None
        if exc.status == 404:
            raise NotFound(message, code="not_found") from None
        if exc.status == 409:
            raise Conflict(message) from None
        raise HostError(f"engine {cfg.name}: {message}", code="engine_error") from None
    except TimeoutError:
        raise HostTimeout(f"{where}: timed out{' (' + what + ')' if what else ''}") from None
    except (aiohttp.ClientError, OSError) as exc:
        reason = tls_hint(cfg, connection_reason(exc) or f"{type(exc).__name__}: {exc}")
        raise HostError(f"{where}: {reason}", code="engine_unreachable") from None
