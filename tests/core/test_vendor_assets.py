"""The committed browser libraries (core/static/vendor): pinned by package-lock.json,
recorded in MANIFEST.json by scripts/build-static.sh, exactly what the templates load,
and checked at startup."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from archnest.web import VENDOR_ASSETS, check_vendor_assets

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "core" / "static"
VENDOR = STATIC / "vendor"
MANIFEST = json.loads((VENDOR / "MANIFEST.json").read_text())["files"]
LOCK = json.loads((ROOT / "package-lock.json").read_text())["packages"]
# A vendored file named in a template or in the project's own scripts.
VENDOR_REF = re.compile(r"vendor/([A-Za-z0-9_.-]+\.(?:js|css))\b")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_matches_lockfile_and_committed_files() -> None:
    assert MANIFEST, "MANIFEST.json lists no file"
    for name, entry in MANIFEST.items():
        locked = LOCK.get(f"node_modules/{entry['package']}")
        assert locked is not None, f"{name}: {entry['package']} is not in package-lock.json"
        assert entry["version"] == locked["version"], (
            f"{name} is {entry['package']} {entry['version']}, the lockfile pins "
            f"{locked['version']}: run scripts/build-static.sh"
        )
        assert entry["integrity"] == locked["integrity"], name
        assert _sha256(VENDOR / name) == entry["sha256"], (
            f"{name} differs from the file MANIFEST.json records: run scripts/build-static.sh"
        )
    # Nothing in the folder that the manifest does not account for.
    assert {p.name for p in VENDOR.iterdir()} == {*MANIFEST, "MANIFEST.json"}


def test_every_runtime_package_ships_its_licence() -> None:
    runtime = set(LOCK[""]["dependencies"])
    vendored = {e["package"] for e in MANIFEST.values()}
    assert vendored == runtime
    licensed = {e["package"] for e in MANIFEST.values() if e["source"] == "LICENSE"}
    assert licensed == runtime


def test_vendor_assets_are_what_the_templates_load() -> None:
    sources = [*(ROOT / "core" / "templates").rglob("*.html"), *STATIC.glob("*.js")]
    referenced = {m for p in sources for m in VENDOR_REF.findall(p.read_text())}
    assert referenced == set(VENDOR_ASSETS)
    assert set(VENDOR_ASSETS) <= set(MANIFEST)


def test_committed_files_equal_the_npm_packages() -> None:
    """Byte for byte the files of the installed npm packages, which ``npm ci`` verified
    against the lockfile's integrity hashes (scripts/test runs it before the suite)."""
    modules = ROOT / "node_modules"
    if not modules.is_dir():
        pytest.skip("node_modules absent: run scripts/build-static.sh --check (needs npm)")
    for name, entry in MANIFEST.items():
        package = modules / entry["package"]
        installed = json.loads((package / "package.json").read_text())["version"]
        assert installed == entry["version"], f"node_modules is stale: npm ci ({name})"
        assert (package / entry["source"]).read_bytes() == (VENDOR / name).read_bytes(), name


def test_the_repository_has_every_vendor_asset() -> None:
    check_vendor_assets(STATIC)


def test_a_missing_asset_stops_startup_naming_it(tmp_path: Path) -> None:
    static = tmp_path / "static"
    shutil.copytree(VENDOR, static / "vendor")
    (static / "vendor" / "xterm.js").unlink()
    (static / "vendor" / "htmx.min.js").unlink()
    with pytest.raises(SystemExit) as exc:
        check_vendor_assets(static)
    message = str(exc.value.code)
    assert "htmx.min.js, xterm.js" in message
    assert "addon-fit.js" not in message
    assert "scripts/build-static.sh" in message and "pip install ." in message


def test_no_vendor_folder_at_all(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=", ".join(VENDOR_ASSETS)):
        check_vendor_assets(tmp_path)
