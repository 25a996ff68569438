"""A Debian bookworm base image for the image tests, built without any registry.

No container registry is reachable from the test machines, so the Dockerfile's default
base (python:3.11-slim-bookworm) cannot be pulled. What the build needs from a base is
bookworm's python3 with its venv module, which debootstrap installs from the Debian
mirror apt already uses. The root filesystem is built once per machine and kept as a
tar file under CACHE_DIR (about a minute to build, 275 MB); each test session's fresh
dockerd imports it in a few seconds.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.testenv import TestEnv, TestEnvError
from tests.testenv.dockerd import docker_binary

TAG = "archnest-test-base:bookworm"
CACHE_DIR = Path(os.environ.get("ARCHNEST_TEST_BASE_CACHE", "/var/cache/archnest-test-base"))
SUITE = "bookworm"
# python3-venv brings ensurepip's wheels (the Dockerfile's `python3 -m venv`); passwd
# (groupadd, useradd) is part of minbase already.
INCLUDE = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Part of the cache key: bump it when the recipe changes in a way the key cannot see.
RECIPE = 1

_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
_SOURCES_LIST = Path("/etc/apt/sources.list")


def apt_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 first, then the one-line format)."""
    if _SOURCES.is_file():
        # deb822 stanzas: the first URIs: of a stanza whose Suites name the release.
        for stanza in re.split(r"\n\s*\n", _SOURCES.read_text()):
            fields = dict(
                line.split(":", 1)
                for line in stanza.splitlines()
                if ":" in line and not line.lstrip().startswith("#")
            )
            suites = fields.get("Suites", "").split()
            uris = fields.get("URIs", "").split()
            if SUITE in suites and uris:
                return uris[0]
    if _SOURCES_LIST.is_file():
        for line in _SOURCES_LIST.read_text().splitlines():
            # deb [options] URI suite components...
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    return DEFAULT_MIRROR


def cache_key(mirror: str) -> str:
    recipe = f"{RECIPE}|{SUITE}|minbase|{','.join(INCLUDE)}|{mirror}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def _build_tar(mirror: str, target: Path) -> None:
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise TestEnvError("debootstrap is not installed (scripts/install-test-deps.sh)")
    if os.geteuid() != 0:
        raise TestEnvError("building the test base image needs root (debootstrap)")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix="root-") as tmp:
        root = Path(tmp) / "root"
        log = Path(tmp) / "debootstrap.log"
        with log.open("wb") as out:
            done = subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(INCLUDE)}",
                    SUITE,
                    str(root),
                    mirror,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=900,
                check=False,
            )
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise TestEnvError(f"debootstrap {SUITE} from {mirror} failed:\n{tail}")
        # apt's downloaded packages are of no use in the image.
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        partial = target.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(target)


def base_tar() -> Path:
    """The cached root filesystem tar, built first if this machine has none."""
    mirror = apt_mirror()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    target = CACHE_DIR / f"bookworm-{cache_key(mirror)}.tar"
    # One builder per machine: other test sessions wait for its tar instead of
    # running debootstrap beside it.
    with (CACHE_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _build_tar(mirror, target)
            # Older recipes' tars are never used again.
            for old in CACHE_DIR.glob("bookworm-*.tar"):
                if old != target:
                    old.unlink()
    return target


def import_base(env: TestEnv) -> tuple[str, float]:
    """Import the base into the environment's dockerd; returns (tag, seconds taken)."""
    started = time.monotonic()
    if env.docker("images", "-q", TAG):
        return TAG, 0.0
    tar = base_tar()
    with tar.open("rb") as stream:
        subprocess.run(
            [docker_binary(), "import", "-", TAG],
            stdin=stream,
            env=env.docker_cli_env(),
            capture_output=True,
            timeout=300,
            check=True,
        )
    return TAG, time.monotonic() - started
