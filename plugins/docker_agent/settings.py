"""Settings of the ``docker_agent`` plugin (docs/configuration.md, "Push agents")."""

from __future__ import annotations

from dataclasses import dataclass

from archnest import PluginSettings, env_setting


@dataclass(frozen=True)
class AgentSettings(PluginSettings):
    # The shared bearer token agents may send (any host name); None: only per-host
    # tokens (enrollments) are accepted, and ingest is disabled (503) without any.
    token: str | None = env_setting("ARCHNEST_AGENT_TOKEN", None, secret=True)
    # A host without a report for this long is shown as stale.
    stale_seconds: int = env_setting("ARCHNEST_AGENT_STALE_SECONDS", 180, minimum=1)
    # Larger reports are refused with 413 while they are read.
    max_report_bytes: int = env_setting(
        "ARCHNEST_AGENT_MAX_REPORT_BYTES", 5 * 1024 * 1024, minimum=1024
    )
    # The base URL agents reach this server at (install commands, installs over SSH);
    # None: the address the admin's browser used (its Origin), else the request's Host.
    server_url: str | None = env_setting("ARCHNEST_AGENT_SERVER_URL", None)
    # Where "Install agent over SSH" installs on the remote host ("/": the real root).
    ssh_install_root: str = env_setting("ARCHNEST_AGENT_SSH_INSTALL_ROOT", "/")
    # Run the remote installer through `sudo -n` (an SSH user that is not root).
    ssh_sudo: bool = env_setting("ARCHNEST_AGENT_SSH_SUDO", False)
    # Validate and store reports in a worker process of their own (SQLite only): the
    # ingest then uses a second core (docs/docker-agent-monitoring.md).
    ingest_worker: bool = env_setting("ARCHNEST_AGENT_INGEST_WORKER", False)
