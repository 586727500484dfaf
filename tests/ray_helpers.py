"""Helpers of the tests that run the CLI against real Ray: a job in its own session, the
listening TCP sockets of a set of processes (from /proc), and the processes of a session."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
from pathlib import Path


class Job:
    """A CLI run in its own session: everything Ray starts for it can be ended by group."""

    def __init__(self, argv, log: Path):
        self.log = log
        self.fh = open(log, "wb")
        self.proc = subprocess.Popen(
            argv, stdout=self.fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, cond, what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert self.proc.poll() is None, f"exited before {what}:\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def finish(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        try:  # whatever is left of the group (Ray agents orphaned by a killed driver)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.fh.close()


def listening_sockets(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every TCP socket in LISTEN state owned by one of ``pids``, read
    from /proc/net/tcp and tcp6 (Linux) and the processes' fd links."""
    owner = {}
    for pid in pids:
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(fd.path)
                except OSError:
                    continue
                if link.startswith("socket:["):
                    owner[int(link[8:-1])] = pid
        except OSError:  # the process ended meanwhile
            continue
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            if f[3] != "0A" or int(f[9]) not in owner:  # 0A: TCP_LISTEN
                continue
            addr_hex, port_hex = f[1].split(":")
            raw = bytes.fromhex(addr_hex)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            addr = ipaddress.ip_address(raw)
            if v6 and addr.ipv4_mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
                addr = addr.ipv4_mapped
            out.append((str(addr), int(port_hex, 16), owner[int(f[9])]))
    return out


def session_pids(sid: int) -> set[int]:
    """Every live process whose session id is ``sid`` (the job and all Ray started for it)."""
    pids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if (
                int(stat.rsplit(")", 1)[1].split()[3]) == sid
            ):  # fields after comm: state ppid pgrp session
                pids.add(int(d.name))
    return pids
