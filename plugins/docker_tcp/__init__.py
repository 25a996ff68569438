"""Source ``docker``: Docker Engine API hosts over a unix socket, plain TCP or mutual TLS."""

__version__ = "0.1.0"
