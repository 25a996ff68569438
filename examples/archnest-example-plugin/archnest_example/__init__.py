"""An example third-party ArchNest plugin: notes attached to containers."""

__version__ = "0.1.0"
