"""A log search's bounds (``SearchLimits``) and its text or pattern, turned into a line
test that runs in the app.

Python's ``re`` backtracks: some patterns take exponential time on a long line, and a
match cannot be interrupted. So a pattern is bounded in length, lines are matched only
up to ``SearchLimits.line_chars`` characters, and the shapes known to blow up are
refused before the search starts: an unbounded repeat whose body repeats again or
alternates (``(a+)+``, ``(a|aa)*``), and backreferences. What remains (several ``.*``
in a row) is polynomial in the line length, which the line bound keeps in check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import BadRequest

try:  # the parser behind re.compile: 3.11+ names it re._parser
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore[no-redef]

_REPEATS = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT}
_POSSESSIVE = getattr(sre_parse, "POSSESSIVE_REPEAT", None)
# A repeat allowing more than this many times counts as unbounded here.
_MANY = 64


def _env_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "")
    try:
        return min(hi, max(lo, int(raw))) if raw else default
    except ValueError:
        return default


@dataclass(frozen=True)
class SearchLimits:
    """The bounds of one search (see docs/logs-and-diff.md, "Searching logs")."""

    # Hosts read at once, and containers read at once on one host. 3 stays below the
    # SSH pool's 4 stream channels per target, so a follow can still open meanwhile.
    hosts: int = 4
    per_host: int = 3
    # Lines read (matching or not) before the search stops with reason "scanned".
    max_scanned: int = 5_000_000
    max_limit: int = 10_000
    default_limit: int = 1000
    seconds: float = 30.0
    # Only the first this many characters of a line are matched and returned: with the
    # pattern's own checks this bounds the work of one regex search.
    line_chars: int = 16 * 1024
    pattern_chars: int = 500

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SearchLimits:
        p = "ARCHNEST_LOG_SEARCH_"
        return cls(
            hosts=_env_int(env, p + "HOSTS", 4, 1, 64),
            per_host=_env_int(env, p + "PER_HOST", 3, 1, 16),
            max_scanned=_env_int(env, p + "MAX_LINES", 5_000_000, 1, 10**9),
            seconds=float(_env_int(env, p + "SECONDS", 30, 1, 3600)),
        )


LIMITS_KEY = web.AppKey("log_search_limits", SearchLimits)


def _bad(message: str) -> BadRequest:
    return BadRequest(message, code="invalid_regex", field="q")


def _walk(items: Any, under_repeat: bool) -> None:
    for op, av in items:
        if op in _REPEATS or (op == _POSSESSIVE and _POSSESSIVE is not None):
            _lo, hi, body = av
            many = hi == sre_parse.MAXREPEAT or hi > _MANY
            if under_repeat and hi > 1:
                raise _bad(
                    "a repeat inside an unbounded repeat (such as (a+)+) can take "
                    "exponential time; simplify the pattern"
                )
            _walk(body, under_repeat or many)
        elif op == sre_parse.BRANCH:
            if under_repeat:
                raise _bad(
                    "alternatives inside an unbounded repeat (such as (a|ab)*) can take "
                    "exponential time; simplify the pattern"
                )
            for alt in av[1]:
                _walk(alt, under_repeat)
        elif op == sre_parse.SUBPATTERN:
            _walk(av[-1], under_repeat)
        elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            _walk(av[1], under_repeat)
        elif op == sre_parse.GROUPREF or op == sre_parse.GROUPREF_EXISTS:
            raise _bad("backreferences are not allowed in a log search")
        elif op == getattr(sre_parse, "ATOMIC_GROUP", None):
            _walk(av, under_repeat)


def compile_matcher(
    q: str, *, regex: bool, case: bool, max_chars: int = 500
) -> Callable[[str], bool]:
    """``q`` as a test of one line: a substring (case-insensitive unless ``case``) or a
    Python regular expression searched anywhere in the line. A bad pattern is a 400
    ``invalid_regex`` naming the position of the error."""
    if len(q) > max_chars:
        raise BadRequest(
            f"q must be at most {max_chars} characters", code="invalid_query", field="q"
        )
    if not regex:
        if case:
            return lambda line: q in line
        folded = q.casefold()
        # ASCII text (most logs) folds with lower(), several times faster than casefold.
        if folded == q.lower():
            return lambda line: folded in line.lower()
        return lambda line: folded in line.casefold()
    flags = 0 if case else re.IGNORECASE
    try:
        compiled = re.compile(q, flags)
        _walk(sre_parse.parse(q, flags).data, False)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise _bad(f"invalid regular expression{where}: {exc.msg}") from exc
    except RecursionError as exc:
        raise _bad("the regular expression is nested too deeply") from exc
    search = compiled.search
    return lambda line: search(line) is not None
