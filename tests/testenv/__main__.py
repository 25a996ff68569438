"""CLI: python -m tests.testenv up|down|env [--json FILE]."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .lifecycle import down_file, load, reap, up
from .procs import TestEnvError


def _exports(path: Path) -> str:
    env = load(path)
    values = {
        # Pointing pytest at this file reuses the running environment.
        "ARCHNEST_TESTENV_FILE": str(path.resolve()),
        "DOCKER_HOST": env.docker_unix_url,
        "DOCKER_CONFIG": str(Path(env.tmpdir) / "docker-cli"),
        "TESTENV_DOCKER_TCP_URL": env.docker_tcp_url,
        "TESTENV_DOCKER_TLS_URL": env.docker_tls_url,
        "TESTENV_SSH_CONFIG": env.ssh_config_path,
        "TESTENV_SSH_PORT": str(env.ssh_target.port),
        "TESTENV_SSH_WRAPPER_DIR": env.ssh_wrapper_dir,
        "TESTENV_PG_URL": env.pg_url,
    }
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testenv")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start an environment that outlives this command")
    p_up.add_argument("--json", type=Path, help="write the coordinates here (default: stdout)")
    p_up.add_argument("--base-dir", help="parent of the temp dir (default /tmp; keep it short)")
    p_down = sub.add_parser("down", help="stop an environment started with up")
    p_down.add_argument("--json", type=Path, required=True)
    p_env = sub.add_parser("env", help='print shell exports, e.g. eval "$(... env --json F)"')
    p_env.add_argument("--json", type=Path, required=True)
    p_reap = sub.add_parser("reap", help=argparse.SUPPRESS)
    p_reap.add_argument("--parent", type=int, required=True)
    p_reap.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            env = up(args.base_dir, register_atexit=False)
            if args.json:
                args.json.write_text(env.to_json())
                args.json.chmod(0o600)  # it holds private keys and the password
                print(
                    f"testenv: coordinates in {args.json}; stop with: "
                    f"python -m tests.testenv down --json {args.json}",
                    file=sys.stderr,
                )
            else:
                print(env.to_json())
        elif args.command == "down":
            if args.json.exists():
                down_file(args.json)
                args.json.unlink()
        elif args.command == "env":
            sys.stdout.write(_exports(args.json))
        elif args.command == "reap":
            reap(args.parent, args.json)
    except TestEnvError as exc:
        print(f"testenv: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
