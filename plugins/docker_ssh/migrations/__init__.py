"""docker_ssh's lineage: its per-target settings (``docker_ssh_targets``)."""
