"""A multi-node Ray cluster on one machine, on loopback only, driven by lines on stdin.

For trying ``unirep-port reps --engine ray --address ADDR`` against several nodes, and losing
one, without a real cluster: the tests (``tests/test_ray_multinode.py``) and the node-loss
measurement (``benchmarks/ray_node_loss.py``) run it through :class:`ClusterProcess`, as a
subprocess in its own session::

    python -m unirep_port.embedding.local_cluster --head-cpus 1 --node w0=1

It starts a head node (``ray.cluster_utils.Cluster``, every node at 127.0.0.1, no dashboard)
and the named worker nodes, then prints ``address 127.0.0.1:PORT`` and ``node NAME NODE_ID``
lines and ``ready``. Commands, one a line, each answered by a line:

* ``remove NAME``: the node's processes killed at once (``allow_graceful=False``: a machine
  lost, not a process) -> ``removed NAME SECONDS``
* ``add NAME CPUS`` -> ``node NAME NODE_ID``
* ``blind NAME CPUS DIR``: a node that cannot see ``DIR`` as the others do: a node started in
  its own mount namespace (``unshare``; this module with ``--join``), with an empty tmpfs over
  ``DIR`` and ``DIR/out`` created in it, so a path under ``DIR/out`` exists there but is not
  the driver's (a node without the shared filesystem) -> ``node NAME NODE_ID``, or ``error ...``
* ``quit`` (or end of input): everything stopped.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
MODULE = "unirep_port.embedding.local_cluster"  # as run with -m (where __name__ is __main__)


def is_loopback_address(address: str) -> bool:
    """Whether a Ray ``host:port`` address is on this machine's loopback (no Ray import)."""
    host = address.rpartition(":")[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name, "auto", no port
        return False


class ClusterProcess:
    """The client side: starts the cluster in its own session and sends it commands.

    ``nodes`` maps node names to Ray node ids; every wait is bounded (``timeout`` seconds).
    Importing this class imports no Ray.
    """

    def __init__(self, log: Path, head_cpus: int, nodes: dict[str, int], *extra: str):
        argv = [sys.executable, "-m", MODULE, "--head-cpus", str(head_cpus), *extra]
        argv += [f"--node={n}={c}" for n, c in nodes.items()]
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.nodes: dict[str, str] = {}
        try:
            self.address = self._reply(120)[1]
            while (words := self._reply(120))[0] != "ready":
                self.nodes[words[1]] = words[2]
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line.split())
        self._lines.put(["exited"])

    def _reply(self, timeout: float) -> list[str]:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the local cluster did not answer within {timeout:g} s") from None

    def command(self, line: str, timeout: float = 120) -> list[str]:
        """Send one command; its answer's words (``["error", ...]`` on failure)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        words = self._reply(timeout)
        if words[0] == "node":
            self.nodes[words[1]] = words[2]
        return words

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(60)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        try:  # whatever is left of the session (node processes)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._reader.join(10)  # the pipe's end is near: every writer is gone
        self.proc.stdout.close()
        self._log.close()


def _say(*words) -> None:
    print(*words, flush=True)


def _node_ids(cluster) -> set[str]:
    return {n["NodeID"] for n in cluster.global_state.node_table() if n["Alive"]}


def _blind(cluster, cpus: int, hidden: str) -> subprocess.Popen:
    """A worker node joined to ``cluster`` in a mount namespace where ``hidden`` is a new tmpfs."""
    join = [sys.executable, "-m", MODULE, "--join", cluster.address, "--head-cpus", str(cpus)]
    script = f"mount -t tmpfs tmpfs {shlex.quote(hidden)} && mkdir {shlex.quote(hidden)}/out && "
    script += "exec " + shlex.join(join)
    flags = ["-m", "--propagation", "private"]
    if subprocess.run(["unshare", *flags, "true"], capture_output=True).returncode != 0:
        flags = ["-Ur", *flags]  # no CAP_SYS_ADMIN: a user namespace gives it for this one
    return subprocess.Popen(["unshare", *flags, "sh", "-c", script], stdout=subprocess.DEVNULL)


def _join(address: str, cpus: int, store: int) -> None:
    """Be one worker node of the cluster at ``address`` until SIGTERM (``--join``)."""
    import ray

    params = ray._private.parameter.RayParams(
        gcs_address=address,
        node_ip_address=LOOPBACK,
        num_cpus=cpus,
        num_gpus=0,
        object_store_memory=store,
        min_worker_port=0,
        max_worker_port=0,
        include_log_monitor=False,
        node_manager_port=0,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # atexit then stops the node
    ray._private.node.Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    while True:
        time.sleep(3600)


def _wait_new_node(cluster, before: set[str], proc, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = _node_ids(cluster) - before
        if new:
            return new.pop()
        if proc.poll() is not None:
            raise RuntimeError(f"the node's process exited with {proc.returncode}")
        time.sleep(0.2)
    raise RuntimeError(f"no new node within {timeout:g} s")


def _command(cluster, nodes: dict, blind: list, cmd: str, arg: list[str]) -> None:
    if cmd == "remove":
        t0 = time.monotonic()
        cluster.remove_node(nodes.pop(arg[0]), allow_graceful=False)
        _say("removed", arg[0], f"{time.monotonic() - t0:.2f}")
    elif cmd == "add":
        node = cluster.add_node(num_cpus=int(arg[1]), node_ip_address=LOOPBACK)
        nodes[arg[0]] = node
        _say("node", arg[0], node.node_id)
    elif cmd == "blind":
        before = _node_ids(cluster)
        blind.append(_blind(cluster, int(arg[1]), arg[2]))
        _say("node", arg[0], _wait_new_node(cluster, before, blind[-1]))
    else:
        _say("error", f"unknown command {cmd!r}")


def serve(cluster, nodes: dict) -> None:
    """Answer commands from stdin until ``quit`` or its end."""
    blind: list[subprocess.Popen] = []
    try:
        for line in sys.stdin:
            cmd, *arg = line.split() or [""]
            if cmd == "quit":
                break
            try:
                _command(cluster, nodes, blind, cmd, arg)
            except Exception as exc:  # reported to the client, which decides
                _say("error", f"{type(exc).__name__}: {exc}".replace("\n", " "))
    finally:
        for p in blind:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--head-cpus", type=int, default=1)
    ap.add_argument("--node", action="append", default=[], help="NAME=CPUS, a worker node")
    ap.add_argument("--object-store-mb", type=int, default=150, help="per node")
    ap.add_argument(
        "--fast-health-check",
        action="store_true",
        help="Ray declares a silent node dead after 3 missed 1 s health checks (default: Ray's)",
    )
    ap.add_argument("--join", metavar="ADDRESS", help="be one worker node of that cluster")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported
    store = args.object_store_mb * 1024 * 1024
    if args.join:
        return _join(args.join, args.head_cpus, store)
    import ray
    from ray.cluster_utils import Cluster

    head = {"num_cpus": args.head_cpus, "node_ip_address": LOOPBACK, "include_dashboard": False}
    head["object_store_memory"] = store
    if args.fast_health_check:
        head["_system_config"] = {
            "health_check_period_ms": 1000,
            "health_check_failure_threshold": 3,
        }
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        nodes = {"head": cluster.head_node}
        for spec in args.node:
            name, cpus = spec.split("=")
            nodes[name] = cluster.add_node(
                num_cpus=int(cpus), node_ip_address=LOOPBACK, object_store_memory=store
            )
        _say("address", cluster.address)
        for name, node in nodes.items():
            _say("node", name, node.node_id)
        _say("ready")
        serve(cluster, nodes)
    finally:
        cluster.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
