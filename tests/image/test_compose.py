"""compose.yaml: the app with PostgreSQL, wired so that it starts as docs/install.md says.

No postgres:16 image can be pulled here, so the file is checked for what would break
`docker compose up -d`: the app's database URL names the postgres service with its user,
database and password, the secrets must come from `.env`, the app waits for a healthy
database, keeps /data in a volume and is published on loopback only. When the compose
plugin is installed, `docker compose config` must accept the file as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from archnest.settings import Settings
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = {"POSTGRES_PASSWORD": "0123abcd" * 8, "ARCHNEST_SECRET_KEY": "fedc" * 16}


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, enough for this file."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def _compose_config(tmp_path: Path) -> subprocess.CompletedProcess[str] | None:
    """`docker compose config -q` on the file where the compose plugin is installed."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        return None
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in SAMPLE.items()))
    return subprocess.run(
        [docker, "compose", "--env-file", str(env_file), "-f", "compose.yaml", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_the_app_reaches_the_postgres_service(compose: dict, tmp_path: Path) -> None:
    app, pg = compose["services"]["app"], compose["services"]["postgres"]
    assert pg["image"].startswith("postgres:16")
    url = make_url(_interpolate(app["environment"]["ARCHNEST_DATABASE_URL"], SAMPLE))
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port) == ("postgres", 5432)
    pg_env = {k: _interpolate(v, SAMPLE) for k, v in pg["environment"].items()}
    assert url.username == pg_env["POSTGRES_USER"]
    assert url.database == pg_env["POSTGRES_DB"]
    assert url.password == pg_env["POSTGRES_PASSWORD"] == SAMPLE["POSTGRES_PASSWORD"]
    # The app starts only once PostgreSQL answers (it migrates on start).
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])

    env = {k: _interpolate(str(v), SAMPLE) for k, v in app["environment"].items()}
    settings = Settings.from_env(env)
    assert settings.database_url == str(url.render_as_string(hide_password=False))
    assert settings.secret_key == SAMPLE["ARCHNEST_SECRET_KEY"]

    # Compose's own validation on top, where the plugin is installed (the checks above
    # do not depend on it, so a machine without it loses nothing but this line).
    validated = _compose_config(tmp_path)
    if validated is not None:
        assert validated.returncode == 0, validated.stderr


def test_the_secrets_must_be_set(compose: dict) -> None:
    app = compose["services"]["app"]
    for name in SAMPLE:
        missing = {k: v for k, v in SAMPLE.items() if k != name}
        with pytest.raises(KeyError, match=name):
            for value in app["environment"].values():
                _interpolate(str(value), missing)


def test_the_app_keeps_data_in_a_volume_and_listens_on_loopback(compose: dict) -> None:
    app = compose["services"]["app"]
    assert any(v.split(":")[1] == "/data" for v in app["volumes"])
    assert app["ports"] == ["127.0.0.1:8080:8080"]
    # The default image is what scripts/build-image tags without arguments.
    default_tag = re.search(r"TAG=\$\{1:-([^}]+)\}", (ROOT / "scripts/build-image").read_text())
    assert default_tag is not None
    assert _interpolate(app["image"], {}) == default_tag.group(1)
    assert set(compose["volumes"]) == {"archnest-data", "postgres-data"}
