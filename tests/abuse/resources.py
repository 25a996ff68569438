"""What a process holds, read from /proc: file descriptors, TCP connections to a port,
and the processes a daemon (sshd) runs on behalf of the app."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path


def fd_count(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _socket_inodes(pid: int | str) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_states_to(port: int, pid: int | str = "self") -> Counter[str]:
    """TCP states (``/proc/net/tcp`` hex codes: "01" established, "08" CLOSE_WAIT, a
    socket the peer closed but we did not) of ``pid``'s sockets whose remote end is
    ``port`` (loopback)."""
    mine = _socket_inodes(pid)
    states: Counter[str] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in mine:
                states[fields[3]] += 1
    return states


def tcp_connections_to(port: int, pid: int | str = "self") -> int:
    """Established TCP connections of ``pid`` whose remote end is ``port`` (loopback)."""
    return tcp_states_to(port, pid)["01"]


def unix_connections_to(path: str, pid: int | str = "self") -> int:
    """Connected unix sockets of ``pid`` whose peer is the listener at ``path``.

    /proc/net/unix names only the listening side, so the count is of our sockets that
    are connected (state 03) and not listeners, minus nothing else: good enough to see
    a leak of engine connections over a unix socket when the app has no other ones.
    """
    mine = _socket_inodes(pid)
    count = 0
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 7 and fields[6] in mine and fields[5] == "03":
            count += 1
    return count


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below ``pid``."""
    children: dict[int, list[int]] = {}
    cmdlines: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        cmdlines[int(entry)] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    out, todo = [], list(children.get(pid, []))
    while todo:
        cur = todo.pop()
        out.append((cur, cmdlines.get(cur, "")))
        todo += children.get(cur, [])
    return out


def remote_commands(sshd_pid: int, needle: str) -> list[str]:
    """Command lines under ``sshd_pid`` containing ``needle`` (e.g. "docker logs")."""
    return [cmd for _, cmd in descendants(sshd_pid) if needle in cmd]


def fd_targets(pid: int | str = "self") -> list[str]:
    """What each descriptor points at (for a readable failure message)."""
    out = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return out
