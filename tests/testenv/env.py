"""TestEnv: every coordinate of a running test environment, plus small helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dockerd, postgres
from .procs import run
from .sshd import SSH_CLIENT, SshEndpoint, SshMaterial
from .tls import TlsMaterial


@dataclass
class TestEnv:
    """Coordinates of one isolated environment (all loopback, all in tmpdir).

    Serialisable to JSON (to_json/from_json) so a long-running environment
    started with `python -m tests.testenv up --json FILE` can be reused.
    """

    __test__ = False  # a dataclass, not a pytest test class

    tmpdir: str

    # Docker Engine API, three ways to the same isolated daemon.
    docker_socket: str
    docker_unix_url: str  # unix:///tmp/an-.../docker.sock
    docker_tcp_url: str  # tcp://127.0.0.1:P1 (plain HTTP)
    docker_tls_url: str  # https://127.0.0.1:P2 (mutual TLS, client certs verified)
    docker_tls_tcp_url: str  # the same listener spelled for the docker CLI (tcp://)
    docker_tcp_port: int
    docker_tls_port: int
    image: str  # archnest-test/busybox:1
    tls: TlsMaterial  # the real CA + a valid client cert/key
    tls_rogue: TlsMaterial  # client cert from an unrelated CA (ca_pem = rogue CA): must fail
    tls_expired: TlsMaterial  # client cert from the real CA, expired: must fail

    # SSH: three sshd on loopback; jump chains target <- jump1 <- jump2.
    ssh_target: SshEndpoint
    ssh_jump1: SshEndpoint
    ssh_jump2: SshEndpoint
    ssh: SshMaterial  # username, password, keys, passphrase, certificate, user CA
    ssh_config_path: str  # `ssh -F this target|jump1|jump2|target-via-jump1|target-via-jump2`
    ssh_known_hosts_path: str
    ssh_wrapper_dir: str  # PATH entry whose `ssh` uses that config (docker -H ssh://target)

    # PostgreSQL 15: a database archnest_test, trust auth on loopback.
    pg_url: str  # postgresql+asyncpg://postgres@127.0.0.1:P/archnest_test
    pg_dsn: str  # postgresql://postgres@127.0.0.1:P/archnest_test (asyncpg.connect)
    pg_port: int
    pg_socket_dir: str

    pids: dict[str, int] = field(default_factory=dict)
    startup_seconds: float = 0.0

    # ---- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestEnv:
        nested = {
            "tls": TlsMaterial,
            "tls_rogue": TlsMaterial,
            "tls_expired": TlsMaterial,
            "ssh_target": SshEndpoint,
            "ssh_jump1": SshEndpoint,
            "ssh_jump2": SshEndpoint,
            "ssh": SshMaterial,
        }
        kwargs = {k: (nested[k](**v) if k in nested else v) for k, v in data.items()}
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> TestEnv:
        return cls.from_dict(json.loads(text))

    # ---- docker --------------------------------------------------------
    def docker_cli_env(self) -> dict[str, str]:
        """os.environ with DOCKER_HOST pointing at the isolated daemon's unix socket."""
        config_dir = Path(self.tmpdir) / "docker-cli"
        config_dir.mkdir(exist_ok=True)
        return dockerd.docker_cli_env(self.docker_socket, str(config_dir))

    def docker_tls_cli_args(self, material: TlsMaterial | None = None) -> list[str]:
        """Global docker CLI flags for the mTLS listener with the given client identity."""
        m = material or self.tls
        return [
            "-H",
            self.docker_tls_tcp_url,
            "--tlsverify",
            f"--tlscacert={self.tls.ca_path}",
            f"--tlscert={m.cert_path}",
            f"--tlskey={m.key_path}",
        ]

    def docker(
        self, *args: str, input: bytes | str | None = None, check: bool = True, timeout: float = 60
    ) -> str:
        """Run the docker CLI against the isolated daemon; return stdout (stripped)."""
        data = input.encode() if isinstance(input, str) else input
        proc = run(
            [dockerd.docker_binary(), *args],
            input=data,
            env=self.docker_cli_env(),
            timeout=timeout,
            check=check,
        )
        return proc.stdout.decode(errors="replace").strip()

    def run_container(
        self,
        name: str | None = None,
        cmd: Sequence[str] = ("sleep", "3600"),
        *,
        env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        ports: Iterable[str] = (),
        network: str | None = None,
        detach: bool = True,
        extra_args: Sequence[str] = (),
    ) -> str:
        """`docker run` from the test image; returns the container id (or output if not detached).

        ports are `-p` specs ("8080:80"). The daemon runs with --bridge=none, so
        they are recorded in HostConfig.PortBindings / Config.ExposedPorts but
        nothing is published: the list API reports "Ports": [].
        """
        args = ["run", "--name", name or f"t-{secrets.token_hex(4)}"]
        args.append("-d" if detach else "--rm")
        if network:
            args += ["--network", network]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        for key, value in (labels or {}).items():
            args += ["--label", f"{key}={value}"]
        for spec in ports:
            args += ["-p", spec]
        args += [*extra_args, self.image, *cmd]
        return self.docker(*args)

    def docker_ssh_cli_env(self) -> dict[str, str]:
        """Env for `docker -H ssh://target ...`: the CLI's ssh picks up the generated config."""
        env = self.docker_cli_env()
        env.pop("DOCKER_HOST")
        env["PATH"] = f"{self.ssh_wrapper_dir}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def remove_all_containers(self) -> None:
        dockerd.remove_all_containers(self.docker_cli_env())

    # ---- ssh -----------------------------------------------------------
    def ssh_cli(self, host: str, *command: str, timeout: float = 60, check: bool = True) -> str:
        """Run a command with the OpenSSH client through the generated ssh_config.

        host: target, jump1, jump2, target-via-jump1 or target-via-jump2.
        Like ssh itself, the words are joined and run by the remote shell, so
        quote anything the shell would interpret ("'{{.Names}}'").
        """
        proc = run(
            [SSH_CLIENT, "-F", self.ssh_config_path, host, "--", *command],
            timeout=timeout,
            check=check,
        )
        return proc.stdout.decode(errors="replace").strip()

    # ---- postgres ------------------------------------------------------
    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its postgresql+asyncpg URL."""
        return postgres.create_database(self.pg_port, name or f"t_{secrets.token_hex(6)}")

    def drop_database(self, name: str) -> None:
        postgres.drop_database(self.pg_port, name)

    async def acreate_database(self, name: str | None = None) -> str:
        """create_database() for async fixtures, without blocking the running loop."""
        return await asyncio.to_thread(self.create_database, name)

    async def adrop_database(self, name: str) -> None:
        await asyncio.to_thread(self.drop_database, name)

    @property
    def alive(self) -> bool:
        return os.path.isdir(self.tmpdir) and bool(self.pids)
