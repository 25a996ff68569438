"""ArchNest source ``ssh``: the docker CLI run over the core's pooled SSH connections.

Hook implementations live in :mod:`archnest_docker_ssh.plugin` (the entry point).
"""

__version__ = "0.1.0"
