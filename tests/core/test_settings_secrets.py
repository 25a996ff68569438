"""Settings from the environment, the generated secret key, encryption and masking."""

import stat

import pytest
from archnest import (
    MASK,
    SecretBox,
    Settings,
    create_app,
    is_secret_name,
    mask_env,
    plugin_settings,
)
from archnest_docker_agent.settings import AgentSettings
from archnest_docker_ssh.settings import DockerSshSettings
from archnest_docker_tcp.settings import DockerTcpSettings


def test_settings_from_env_defaults_and_overrides(tmp_path):
    s = Settings.from_env({"ARCHNEST_DATA_DIR": str(tmp_path)})
    assert s.database_url.startswith("sqlite+aiosqlite:///") and str(tmp_path) in s.database_url
    assert s.plugins is None and s.ssh_connect_timeout is None and s.ssh_max_channels == 10
    s = Settings.from_env(
        {
            "ARCHNEST_DATA_DIR": str(tmp_path),
            "ARCHNEST_DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1/db",
            "ARCHNEST_PLUGINS": "docker_tcp, docker_agent",
            "ARCHNEST_SSH_CONNECT_TIMEOUT": "2.5",
            "ARCHNEST_SSH_IDLE_SECONDS": "60",
            "ARCHNEST_SSH_MAX_COMMANDS": "3",
            "OTHER": "not an ArchNest variable",
        }
    )
    assert s.database_url.startswith("postgresql+asyncpg://")
    assert s.plugins == ["docker_tcp", "docker_agent"]
    assert (s.ssh_connect_timeout, s.ssh_idle_seconds, s.ssh_max_commands) == (2.5, 60.0, 3)
    # What plugin settings are parsed from: ArchNest's variables only.
    assert "OTHER" not in s.plugin_env and s.plugin_env["ARCHNEST_SSH_MAX_COMMANDS"] == "3"
    for name, bad, needle in [
        ("ARCHNEST_SSH_KEEPALIVE", "often", "must be a number"),
        ("ARCHNEST_SSH_CONNECT_TIMEOUT", "nan", "must be a finite number"),
        ("ARCHNEST_SSH_MAX_CHANNELS", "0", "must be at least 1, got 0"),
        ("ARCHNEST_SSH_COMMAND_TIMEOUT", "0", "must be at least 0.1, got 0"),
    ]:
        with pytest.raises(SystemExit, match=f"{name} {needle}"):
            Settings.from_env({name: bad})


def test_builtin_plugin_settings_keep_their_environment_names(tmp_path):
    # The agent, local-socket and SSH engine settings belong to their plugins now; the
    # variables are the ones operators already set.
    env = {
        "ARCHNEST_AGENT_TOKEN": "tok",
        "ARCHNEST_AGENT_STALE_SECONDS": "5",
        "ARCHNEST_AGENT_MAX_REPORT_BYTES": "65536",
        "ARCHNEST_ADD_LOCAL_DOCKER": "false",
        "ARCHNEST_LOCAL_DOCKER_SOCKET": "/run/docker.sock",
        "ARCHNEST_SSH_ENGINE_API": "0",
    }
    settings = Settings.from_env({"ARCHNEST_DATA_DIR": str(tmp_path), **env})
    app = create_app(settings)
    agent = plugin_settings(app, AgentSettings)
    assert (agent.token, agent.stale_seconds, agent.max_report_bytes) == ("tok", 5, 65536)
    assert "tok" not in repr(agent)  # a secret stays out of logs and tracebacks
    tcp = plugin_settings(app, DockerTcpSettings)
    assert (tcp.add_local_docker, tcp.local_docker_socket) == (False, "/run/docker.sock")
    assert plugin_settings(app, DockerSshSettings).engine_api is False
    # Unset: the documented defaults.
    app = create_app(Settings(data_dir=tmp_path))
    agent = plugin_settings(app, AgentSettings)
    assert (agent.token, agent.stale_seconds, agent.max_report_bytes) == (None, 180, 5 << 20)
    tcp = plugin_settings(app, DockerTcpSettings)
    assert (tcp.add_local_docker, tcp.local_docker_socket) == (True, "/var/run/docker.sock")
    assert plugin_settings(app, DockerSshSettings).engine_api is True
    # A bad value stops the app from being built, naming the variable.
    with pytest.raises(SystemExit, match="ARCHNEST_AGENT_STALE_SECONDS must be an integer"):
        create_app(Settings(data_dir=tmp_path, plugin_env={"ARCHNEST_AGENT_STALE_SECONDS": "soon"}))


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
