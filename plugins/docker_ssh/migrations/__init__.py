"""docker_ssh has no tables of its own: SSH targets belong to the core (``ssh_targets``)."""
