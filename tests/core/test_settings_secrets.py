"""Settings from the environment, the generated secret key, encryption and masking."""

import stat

import pytest
from archnest import MASK, SecretBox, Settings, is_secret_name, mask_env


def test_settings_from_env_defaults_and_overrides(tmp_path):
    s = Settings.from_env({"ARCHNEST_DATA_DIR": str(tmp_path)})
    assert s.database_url.startswith("sqlite+aiosqlite:///") and str(tmp_path) in s.database_url
    assert s.agent_token is None and s.agent_stale_seconds == 180 and s.plugins is None
    s = Settings.from_env(
        {
            "ARCHNEST_DATA_DIR": str(tmp_path),
            "ARCHNEST_DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1/db",
            "ARCHNEST_AGENT_TOKEN": "tok",
            "ARCHNEST_AGENT_STALE_SECONDS": "5",
            "ARCHNEST_PLUGINS": "docker_tcp, docker_agent",
        }
    )
    assert s.database_url.startswith("postgresql+asyncpg://")
    assert s.agent_token == "tok" and s.agent_stale_seconds == 5
    assert s.plugins == ["docker_tcp", "docker_agent"]
    with pytest.raises(SystemExit):
        Settings.from_env({"ARCHNEST_AGENT_STALE_SECONDS": "soon"})


def test_secret_key_is_generated_once_with_mode_0600(tmp_path):
    s = Settings(data_dir=tmp_path)
    key = s.ensure_secret_key()
    path = tmp_path / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path).ensure_secret_key() == key


def test_secret_box_round_trip_and_wrong_key():
    box = SecretBox("k1")
    token = box.encrypt("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert "PRIVATE" not in token
    assert box.decrypt(token) == "-----BEGIN OPENSSH PRIVATE KEY-----"
    assert box.encrypt(None) is None and box.decrypt(None) is None
    with pytest.raises(ValueError, match="current key"):
        SecretBox("k2").decrypt(token)


@pytest.mark.parametrize(
    "name",
    [
        "POSTGRES_PASSWORD",
        "db_passwd",
        "API_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "SSH_PRIVATE_KEY",
        "GITHUB_AUTH",
        "SMTP_CREDENTIALS",
        "sentry_dsn",
        "SESSION_COOKIE_NAME",
        "TLS_CERT",
    ],
)
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "TZ", "LANG", "PORT", "HOSTNAME"])
def test_plain_names(name):
    assert not is_secret_name(name)


def test_mask_env_docker_list_and_dicts():
    out = mask_env(
        ["PATH=/bin", "DB_PASSWORD=hunter2", "EMPTY=", "URL=postgres://u:pw@db/x", "X=a=b"]
    )
    assert out == [
        {"name": "PATH", "value": "/bin", "masked": False},
        {"name": "DB_PASSWORD", "value": MASK, "masked": True},
        {"name": "EMPTY", "value": "", "masked": False},
        {"name": "URL", "value": MASK, "masked": True},
        {"name": "X", "value": "a=b", "masked": False},
    ]
    # Defence in depth: a dict claiming "not masked" for a secret name is masked anyway.
    assert mask_env([{"name": "API_KEY", "value": "abc", "masked": False}])[0]["value"] == MASK
