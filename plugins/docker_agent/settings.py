"""Settings of the ``docker_agent`` plugin (docs/configuration.md, "Push agents")."""

from __future__ import annotations

from dataclasses import dataclass

from archnest import PluginSettings, env_setting


@dataclass(frozen=True)
class AgentSettings(PluginSettings):
    # The bearer token agents send; None: ingest is disabled (503).
    token: str | None = env_setting("ARCHNEST_AGENT_TOKEN", None, secret=True)
    # A host without a report for this long is shown as stale.
    stale_seconds: int = env_setting("ARCHNEST_AGENT_STALE_SECONDS", 180, minimum=1)
    # Larger reports are refused with 413 while they are read.
    max_report_bytes: int = env_setting(
        "ARCHNEST_AGENT_MAX_REPORT_BYTES", 5 * 1024 * 1024, minimum=1024
    )
