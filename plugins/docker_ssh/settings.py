"""Settings of the ``docker_ssh`` plugin (docs/configuration.md, "SSH transport").

The SSH connection pool is the core's (``Settings.ssh_*``); only what is about Docker
over SSH lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

from archnest import PluginSettings, env_setting


@dataclass(frozen=True)
class DockerSshSettings(PluginSettings):
    # False: always list with the docker CLI instead of the Engine API stream.
    engine_api: bool = env_setting("ARCHNEST_SSH_ENGINE_API", True)
