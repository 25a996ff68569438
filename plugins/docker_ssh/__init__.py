"""ArchNest source ``ssh``: the docker CLI run over the core's pooled SSH connections.

Listing and the health probe go through the Engine API instead, over one long-lived
``docker system dial-stdio`` per target (HTTP/1.1 keep-alive on the pooled connection,
see :mod:`archnest_docker_ssh.engine`); on any failure they fall back to the CLI.

Hook implementations live in :mod:`archnest_docker_ssh.plugin` (the entry point).
"""

__version__ = "0.1.0"
