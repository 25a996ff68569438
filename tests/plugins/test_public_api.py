"""The public API is deliberate: ``archnest.__all__`` and ``archnest.ssh.__all__`` are
exactly what docs/plugin-authors.md documents, and every other module of the core is
closed to plugins by the import-linter contract in pyproject.toml."""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Iterable
from pathlib import Path

import archnest
import archnest.ssh
from aiohttp import web
from archnest import ApiError

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugin-authors.md"
CORE = ROOT / "core"
PYPROJECT = ROOT / "pyproject.toml"

REFERENCE = "Public API reference"
SSH_SECTION = "The SSH transport"
GROUPS = ["App & hooks", "Models", "Errors", "Keys", "Helpers"]
PUBLIC_MODULES = {"archnest", "archnest.ssh"}
PLUGIN_PACKAGES = {"archnest_docker_tcp", "archnest_docker_ssh", "archnest_docker_agent"}

# One reference entry: "- `name` — what it is".
_ENTRY = re.compile(r"^- `([A-Za-z_][A-Za-z0-9_]*)` — \S", re.M)


def section(guide: str, title: str, level: str = "##") -> str:
    """The text under the heading ``title`` up to the next heading of the same level."""
    match = re.search(rf"^{level} {re.escape(title)}\n(.*?)(?=^{level} |\Z)", guide, re.M | re.S)
    assert match, f"no '{level} {title}' section in {GUIDE.name}"
    return match.group(1)


def documented(text: str) -> list[str]:
    return _ENTRY.findall(text)


def api_problems(exported: Iterable[str], documented_names: list[str], where: str) -> list[str]:
    exported = set(exported)
    problems = [
        f"{where}: {n} is documented twice"
        for n in sorted({n for n in documented_names if documented_names.count(n) > 1})
    ]
    problems += [
        f"{where}: {n} is exported but not documented"
        for n in sorted(exported - set(documented_names))
    ]
    problems += [
        f"{where}: {n} is documented but not exported"
        for n in sorted(set(documented_names) - exported)
    ]
    return problems


def test_archnest_exports_exactly_the_documented_names() -> None:
    names = documented(section(GUIDE.read_text(), REFERENCE))
    assert len(names) > 40
    assert api_problems(archnest.__all__, names, "archnest") == []


def test_archnest_ssh_exports_exactly_the_documented_names() -> None:
    names = documented(section(GUIDE.read_text(), SSH_SECTION))
    assert {"SSH_POOL_KEY", "SshPool", "SshResult", "list_targets"} <= set(names)
    assert api_problems(archnest.ssh.__all__, names, "archnest.ssh") == []


def test_every_export_exists_and_nothing_else_is_public() -> None:
    for module in (archnest, archnest.ssh):
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert missing == [], module.__name__
        # A name importable from the module but not in __all__ is public by accident.
        extra = {
            n
            for n, v in vars(module).items()
            if not n.startswith("_")
            and not isinstance(v, types.ModuleType)
            and n != "annotations"  # from __future__
        } - set(module.__all__)
        assert extra == set(), module.__name__
    # SSH names live in archnest.ssh only: one way to import each thing.
    assert set(archnest.__all__).isdisjoint(archnest.ssh.__all__)


def test_reference_is_grouped_and_groups_hold_what_they_say() -> None:
    reference = section(GUIDE.read_text(), REFERENCE)
    assert re.findall(r"^### (.+)$", reference, re.M) == GROUPS
    by_group = {g: documented(section(reference, g, "###")) for g in GROUPS}
    assert sorted(n for names in by_group.values() for n in names) == sorted(documented(reference))

    errors = {
        n
        for n in archnest.__all__
        if isinstance(getattr(archnest, n), type) and issubclass(getattr(archnest, n), ApiError)
    }
    assert set(by_group["Errors"]) == errors
    keys = {n for n in archnest.__all__ if isinstance(getattr(archnest, n), web.AppKey)}
    assert set(by_group["Keys"]) == keys


def test_checker_catches_an_undocumented_export_and_a_stale_entry() -> None:
    names = documented(section(GUIDE.read_text(), REFERENCE))
    assert api_problems([*archnest.__all__, "brand_new_helper"], names, "archnest") == [
        "archnest: brand_new_helper is exported but not documented"
    ]
    assert api_problems(archnest.__all__, [*names, "gone_helper", "hookimpl"], "archnest") == [
        "archnest: hookimpl is documented twice",
        "archnest: gone_helper is documented but not exported",
    ]
    assert documented("- `make_thing` — makes a thing\n- `half` —\nnot `an` — entry") == [
        "make_thing"
    ]


# -- import-linter: no module of the core escapes the contract -----------------------


def core_modules(core: Path = CORE) -> set[str]:
    """Every module and package of ``archnest`` (``core/``), by import name."""
    modules = set()
    for path in core.rglob("*.py"):
        parts = path.relative_to(core).with_suffix("").parts
        if not all((core.joinpath(*parts[:i]) / "__init__.py").exists() for i in range(len(parts))):
            continue  # not inside a package (e.g. a script under static/)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.add(".".join(("archnest", *parts)))
    return modules


def unlisted(modules: Iterable[str], forbidden: Iterable[str]) -> list[str]:
    """Modules neither public nor closed to plugins (themselves or through a package)."""
    closed = set(forbidden)

    def is_closed(name: str) -> bool:
        parts = name.split(".")
        return any(".".join(parts[:i]) in closed for i in range(2, len(parts) + 1))

    return sorted(m for m in modules if m not in PUBLIC_MODULES and not is_closed(m))


def _contracts() -> tuple[dict, list[dict]]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return config, config["contracts"]


def _public_only_contract() -> dict:
    _, contracts = _contracts()
    matches = [
        c
        for c in contracts
        if c["type"] == "forbidden" and set(c["source_modules"]) == PLUGIN_PACKAGES
    ]
    assert len(matches) == 1
    return matches[0]


def test_import_contracts_cover_the_core_and_every_plugin() -> None:
    config, contracts = _contracts()
    assert set(config["root_packages"]) == {"archnest"} | PLUGIN_PACKAGES
    kinds = {
        (c["type"], tuple(sorted(c.get("source_modules", c.get("modules", []))))) for c in contracts
    }
    assert ("forbidden", ("archnest",)) in kinds  # the core never imports a plugin
    assert ("independence", tuple(sorted(PLUGIN_PACKAGES))) in kinds
    core_contract = next(c for c in contracts if c.get("source_modules") == ["archnest"])
    assert set(core_contract["forbidden_modules"]) == PLUGIN_PACKAGES
    public_only = _public_only_contract()
    assert public_only["allow_indirect_imports"] is True
    assert PUBLIC_MODULES.isdisjoint(public_only["forbidden_modules"])


def test_every_core_module_is_public_or_closed_to_plugins() -> None:
    forbidden = _public_only_contract()["forbidden_modules"]
    modules = core_modules()
    assert {"archnest", "archnest.ssh", "archnest.ssh.pool", "archnest.hosts"} <= modules
    assert unlisted(modules, forbidden) == []
    # And no entry names a module that is gone (lint-imports would stop on it).
    assert sorted(set(forbidden) - modules) == []


def test_a_new_private_module_cannot_escape(tmp_path: Path) -> None:
    forbidden = _public_only_contract()["forbidden_modules"]
    assert unlisted(
        [*core_modules(), "archnest.brand_new", "archnest.ssh.brand_new"], forbidden
    ) == [
        "archnest.brand_new",
        "archnest.ssh.brand_new",
    ]
    # Found on disk, in a package, a subpackage, but not outside one.
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "brand_new.py").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "__init__.py").write_text("")
    (tmp_path / "sub" / "deep.py").write_text("")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "tool.py").write_text("")
    found = core_modules(tmp_path)
    assert found == {"archnest", "archnest.brand_new", "archnest.sub", "archnest.sub.deep"}
    # A private package closes its modules with one entry.
    assert unlisted(found, ["archnest.brand_new", "archnest.sub"]) == []
