"""Building the plugin manager: core hooks plus plugins from the entry-point group."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points, version
from types import ModuleType

import pluggy

from . import hookspecs

log = logging.getLogger("archnest.plugins")

ENTRY_POINT_GROUP = "archnest.plugins"
DISTRIBUTION = "archnest-containers"
hookimpl = pluggy.HookimplMarker("archnest")

# Core features use the same hooks as third-party plugins (Datasette's convention).
CORE_PLUGINS = ("archnest.core_plugin", "archnest.ssh.plugin")


@dataclass
class LoadedPlugin:
    name: str
    module: str
    version: str | None
    distribution: str | None
    core: bool = False


def build_plugin_manager(
    allow: list[str] | None = None, extra: list[ModuleType | object] | None = None
) -> pluggy.PluginManager:
    """Return a fresh manager; ``allow`` restricts entry-point plugins by name."""
    pm = pluggy.PluginManager("archnest")
    pm.add_hookspecs(hookspecs)
    pm.loaded = []  # type: ignore[attr-defined]
    core_version = _core_version()
    for modname in CORE_PLUGINS:
        module = importlib.import_module(modname)
        pm.register(module, name=modname)
        pm.loaded.append(  # type: ignore[attr-defined]
            LoadedPlugin(modname, modname, core_version, DISTRIBUTION, core=True)
        )
    seen: set[str] = set()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        if allow is not None and ep.name not in allow:
            log.info("plugin %s not in ARCHNEST_PLUGINS, skipped", ep.name)
            continue
        try:
            module = ep.load()
        except Exception:
            # A broken third-party plugin must not take the whole app down.
            log.exception("plugin %s failed to load", ep.name)
            continue
        pm.register(module, name=ep.name)
        dist = ep.dist
        pm.loaded.append(  # type: ignore[attr-defined]
            LoadedPlugin(
                ep.name,
                ep.value,
                dist.version if dist else None,
                dist.metadata["Name"] if dist else None,
            )
        )
    for obj in extra or []:
        name = getattr(obj, "__name__", None) or repr(obj)
        pm.register(obj, name=name)
        pm.loaded.append(LoadedPlugin(name, name, None, None))  # type: ignore[attr-defined]
    pm.check_pending()
    return pm


def _core_version() -> str | None:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return None


def loaded_plugins(pm: pluggy.PluginManager) -> list[LoadedPlugin]:
    return list(getattr(pm, "loaded", []))


def flatten(results: list) -> list:
    """Hooks return a value or a list; collect all non-None items in order."""
    out: list = []
    for r in results:
        if r is None:
            continue
        if isinstance(r, list | tuple):
            out.extend(x for x in r if x is not None)
        else:
            out.append(r)
    return out
