"""Typed settings a plugin declares for itself, read once from the environment.

A plugin describes its settings as a frozen dataclass deriving from ``PluginSettings``,
each field naming its environment variable with ``env_setting``; it returns the class
from its ``archnest_plugin_settings`` hook. While the app is built, the core parses every
declared class from ``Settings.plugin_env`` (the process's ``ARCHNEST_*`` variables, or
what a test or an embedding program passed) and a bad value stops startup with a
message naming the variable. Code reads the values with ``plugin_settings(app, Cls)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from .settings import _env_bool, _env_float, _env_int

_ENV = "archnest_env"
_MIN = "archnest_min"
PREFIX = "ARCHNEST_"

S = TypeVar("S", bound="PluginSettings")


def env_setting(
    name: str, default: Any, *, minimum: float | None = None, secret: bool = False
) -> Any:
    """A field of a ``PluginSettings`` dataclass read from the variable ``name``.

    ``default`` applies when the variable is unset or empty; ``minimum`` bounds an
    ``int`` or ``float`` field from below; ``secret`` keeps the value out of ``repr``
    (and so out of logs and tracebacks).
    """
    if not name.startswith(PREFIX) or name == PREFIX:
        raise ValueError(f"plugin setting names start with {PREFIX}, got {name!r}")
    return dataclasses.field(default=default, repr=not secret, metadata={_ENV: name, _MIN: minimum})


@dataclasses.dataclass(frozen=True)
class PluginSettings:
    """Base of a plugin's settings: a frozen dataclass of ``env_setting`` fields.

    Field types may be ``str``, ``int``, ``float``, ``bool`` or ``str | None``; booleans
    accept 1/true/yes/on and 0/false/no/off.
    """

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str]) -> S:
        """Parse every field from ``env``; SystemExit with the variable's name on bad input."""
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata.get(_ENV)
            if name is None:
                raise TypeError(f"{cls.__name__}.{f.name} names no variable: use env_setting()")
            values[f.name] = _parse(env, name, hints[f.name], f.default, f.metadata.get(_MIN))
        return cls(**values)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name -> environment variable name."""
        return {f.name: f.metadata[_ENV] for f in dataclasses.fields(cls)}


def _parse(env: Mapping[str, str], name: str, kind: Any, default: Any, lo: Any) -> Any:
    if kind is bool:
        return _env_bool(env, name, default)
    if kind is int:
        return _env_int(env, name, default, lo=lo)
    if kind is float:
        return _env_float(env, name, default, lo=lo)
    if kind is str:
        raw = env.get(name)
        return default if raw is None or raw == "" else raw
    if _is_optional_str(kind):
        return env.get(name) or default
    raise TypeError(f"{name}: unsupported setting type {kind!r} (str, int, float, bool)")


def _is_optional_str(kind: Any) -> bool:
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    return union and set(typing.get_args(kind)) == {str, type(None)}


PLUGIN_SETTINGS_KEY = web.AppKey("archnest_plugin_settings", dict[type, PluginSettings])


def load_plugin_settings(
    classes: Iterable[type[PluginSettings] | None], env: Mapping[str, str]
) -> dict[type, PluginSettings]:
    """Parse each declared class once (a class declared twice is parsed once)."""
    loaded: dict[type, PluginSettings] = {}
    for cls in classes:
        if cls is None or cls in loaded:
            continue
        if not (isinstance(cls, type) and issubclass(cls, PluginSettings)):
            raise TypeError(f"archnest_plugin_settings returned {cls!r}, not a PluginSettings")
        loaded[cls] = cls.from_env(env)
    return loaded


def plugin_settings(app: web.Application, cls: type[S]) -> S:
    """The values of ``cls`` for this app, as parsed when the app was built."""
    try:
        value = app[PLUGIN_SETTINGS_KEY][cls]
    except KeyError:
        raise LookupError(
            f"{cls.__name__} is not declared: return it from the plugin's "
            "archnest_plugin_settings hook"
        ) from None
    return value  # type: ignore[return-value]


__all__ = ["PluginSettings", "env_setting", "plugin_settings"]
