"""The example plugin as a user meets it: a separate distribution pip-installed into a
fresh virtualenv beside the (non-editable) app, then uninstalled again.

The fresh venv borrows the dependencies (and pip, setuptools, wheel) of the
interpreter running the tests through a ``.pth`` line, so nothing is downloaded;
``archnest`` and the plugin themselves are real wheels built from a copy of the checkout
(``--no-deps --no-build-isolation``) and installed into the venv, whose site-packages
comes first on ``sys.path``. A ``.pth`` line does not run the outer environment's own
``.pth`` files, so an editable ``archnest`` there stays invisible.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import secrets
import shutil
import site
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.testenv import TestEnv
from tests.testenv.serve import serve_installed

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "archnest-example-plugin"
ADMIN_PASSWORD = "example-admin-pw-1"
BUILTINS = {"docker_tcp", "docker_ssh", "docker_agent"}
# Not part of the wheel, or build output: copying them would only cost time.
SKIP_COPY = shutil.ignore_patterns(
    ".git", "node_modules", "data", "build", "dist", "*.egg-info", "__pycache__", ".venv",
    ".pytest_cache", ".ruff_cache", ".hypothesis", "tests", "examples", "bench",
)  # fmt: skip


class Venv:
    def __init__(self, root: Path, data_dir: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ARCHNEST_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
        }
        self.env.update(
            VIRTUAL_ENV=str(root),
            PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            ARCHNEST_DATA_DIR=str(data_dir),
            ARCHNEST_ADMIN_PASSWORD=ADMIN_PASSWORD,
            ARCHNEST_ADD_LOCAL_DOCKER="0",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PIP_NO_INDEX="1",  # everything needed is local; never reach for an index
        )
        self.cwd = data_dir.parent

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    @contextmanager
    def serve(self, log: Path) -> Iterator[str]:
        with serve_installed(self.bin / "archnest", self.env, self.cwd, log, timeout=30) as base:
            yield base


class Browser:
    """A cookie-keeping client that sends a same-origin ``Origin`` like a browser."""

    def __init__(self, base: str) -> None:
        self.base = base
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Origin", self.base)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def _make_venv(root: Path, data_dir: Path) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    inner = subprocess.run(
        [
            str(root / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(inner, "_outer_env.pth").write_text("".join(f"{p}\n" for p in outer))
    return Venv(root, data_dir)


def _check_panel(browser: Browser, testenv: TestEnv) -> None:
    """The plugin's tab in the container detail view, for a container on the real dockerd."""
    name = f"noted-{secrets.token_hex(4)}"
    engine = {"name": "testenv", "url": testenv.docker_unix_url}
    status, body = browser.request("POST", "/api/docker/hosts", engine)
    assert status == 201, body
    host_id = json.loads(body)["host_id"]
    testenv.run_container(name)
    try:
        status, html = browser.request("GET", f"/ui/hosts/{host_id}/containers/{name}")
        assert status == 200, html
        assert ">Notes</button>" in html and 'data-panel-id="example-notes"' in html
        assert f"<h3>Notes for {name}</h3>" in html
    finally:
        testenv.docker("rm", "-f", name, check=False)


def _plugins(venv: Venv) -> set[str]:
    return {p["name"] for p in json.loads(venv.run("archnest", "plugins", "--json").stdout)}


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _can_build_wheels() -> bool:
    # --no-build-isolation builds with this environment's setuptools: it needs the
    # ``wheel`` package, or setuptools >= 70.1 which ships bdist_wheel itself.
    try:
        import setuptools.command.bdist_wheel  # noqa: F401
    except ImportError:
        try:
            import wheel  # noqa: F401
        except ImportError:
            return False
    return True


def test_example_plugin_install_use_and_uninstall(tmp_path: Path, testenv: TestEnv) -> None:
    assert _can_build_wheels(), (
        "the test environment cannot build wheels offline: install 'setuptools>=70.1' "
        "(or the 'wheel' package) beside the test dependencies"
    )
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP_COPY)
    shutil.copytree(EXAMPLE, tmp_path / "example", ignore=SKIP_COPY)
    venv = _make_venv(tmp_path / "venv", tmp_path / "run" / "data")
    (tmp_path / "run").mkdir()
    pip = ("python", "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q")
    venv.run(*pip, str(src))
    venv.run(*pip, str(tmp_path / "example"))
    where = venv.run(
        "python",
        "-c",
        "import archnest, archnest_example as e; print(archnest.__file__, e.__file__)",
    ).stdout.split()
    assert all(p.startswith(str(venv.root)) for p in where), f"not from the venv: {where}"

    # archnest plugins: the three built-ins and the example, all through entry points.
    assert _plugins(venv) == BUILTINS | {"example"}

    # archnest db upgrade: the plugin's lineage creates its table.
    out = venv.run("archnest", "db", "upgrade").stdout
    assert "example" in out and "current=example_0001" in out
    db = tmp_path / "run" / "data" / "archnest.db"
    assert {"example_notes", "alembic_version_example", "users"} <= _tables(db)

    # archnest serve: the route answers (admin-only POST, viewer GET), the page with its
    # nav item renders from the plugin's namespaced template, its static file is served.
    with venv.serve(tmp_path / "serve1.log") as base:
        browser = Browser(base)
        assert browser.request("GET", "/api/example/notes")[0] == 401
        status, _ = browser.request(
            "POST", "/api/auth/login", {"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert status == 200
        note = {"host_id": "docker:1", "container": "web", "text": "rotated <certs>"}
        status, body = browser.request("POST", "/api/example/notes", note)
        assert status == 201, body
        status, body = browser.request("GET", "/api/example/notes?container=web")
        assert status == 200 and json.loads(body)[0]["text"] == "rotated <certs>"
        status, page = browser.request("GET", "/example/notes")
        assert status == 200
        assert '<a href="/example/notes" aria-current="page">Notes</a>' in page
        assert "rotated &lt;certs&gt;" in page  # autoescaped
        status, page = browser.request("GET", "/containers")
        assert status == 200 and '<a href="/example/notes">Notes</a>' in page
        assert browser.request("GET", "/static/example/example.css")[0] == 200
        _check_panel(browser, testenv)

    # Uninstalled: the app and db upgrade keep working; the plugin's route is gone.
    venv.run("python", "-m", "pip", "uninstall", "-y", "-q", "archnest-example-plugin")
    assert _plugins(venv) == BUILTINS
    out = venv.run("archnest", "db", "upgrade").stdout
    assert "example" not in out and "core" in out
    with venv.serve(tmp_path / "serve2.log") as base:
        browser = Browser(base)
        status, _ = browser.request(
            "POST", "/api/auth/login", {"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert status == 200
        assert browser.request("GET", "/api/example/notes")[0] == 404
        status, page = browser.request("GET", "/containers")
        assert status == 200 and "/example/notes" not in page
