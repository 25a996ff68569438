"""Settings of the ``docker_tcp`` plugin (docs/configuration.md, "Docker Engine API source")."""

from __future__ import annotations

from dataclasses import dataclass

from archnest import PluginSettings, env_setting


@dataclass(frozen=True)
class DockerTcpSettings(PluginSettings):
    # On first start, add the local socket once as the engine "local".
    add_local_docker: bool = env_setting("ARCHNEST_ADD_LOCAL_DOCKER", True)
    local_docker_socket: str = env_setting("ARCHNEST_LOCAL_DOCKER_SOCKET", "/var/run/docker.sock")
