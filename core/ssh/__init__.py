"""The core SSH transport (targets, pinned host keys, pooled connections)."""
