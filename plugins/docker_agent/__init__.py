"""ArchNest source ``agent``: Docker hosts that push snapshots (read-only).

Hook implementations live in :mod:`archnest_docker_agent.plugin` (the entry point).
"""

__version__ = "0.1.0"
