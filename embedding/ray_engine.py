"""The Ray executor of ``unirep-port reps --engine ray``: a pool of long-lived actors.

Why actors rather than Ray Data ``map_batches``: the unit of work here is a shard whose output
file, record count and checksum go into the manifest, and a resumed run must skip exactly the
finished shards. With actors the driver keeps that bookkeeping in one place (which shard went
where, what came back), and each actor loads and prepares the weights once and keeps its
compiled chunk functions warm for the whole run.

Each actor owns one device: one CPU (XLA single-threaded, so N actors use N cores without
oversubscription; its reps are bitwise those of the multi-threaded in-process engine) or, with
``gpu``, one GPU. Actors are spread over the nodes (Ray's ``SPREAD`` strategy).

Losing a worker, or a whole node (``ray_pool.ActorPool`` keeps the books):

* a shard whose actor died or became unreachable goes back to the queue and on to a live actor
  (Ray runs no task twice by itself: ``max_task_retries=0``); a shard a worker dies on more than
  :data:`MAX_ATTEMPTS` times fails with its own error, so a shard that kills its worker cannot
  loop forever. A shard write is atomic, so a shard computed twice replaces nothing or an
  identical file;
* the lost actor is restarted by Ray wherever a CPU (GPU) is free (``max_restarts``); the driver
  pings it every ``ray_pool.PING_EVERY_S`` and gives it shards again once it answers;
* when no actor has answered for ``lost_timeout_s`` while shards wait, the executor raises
  ``reps_sharded.WorkersLost`` naming the workers' nodes (dead or not answering) and the
  shards not done: the run exits 3 and a re-run of the same command resumes.

The constructor takes plain values only (no object in Ray's object store, so Ray's warning about
restarting such actors, ray-project/ray#53727, does not apply): the weights go with every shard
as a reference to the one copy the driver ``ray.put`` (pinned in the object store of the
driver's node as long as the driver holds it; losing that node loses the driver too), and an
actor, restarted or not, fetches them on its first shard.

Before the first shard, every actor writes a probe file into the output directory and the
driver reads it back: a node that cannot write there, or writes where the driver does not
read, stops the run with a message naming the node (a cluster run needs ``-o`` on a filesystem
every node shares). A restarted actor is probed again before it gets shards.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import ray

from unirep_port import interrupt
from unirep_port.embedding.local_cluster import LOOPBACK, is_loopback_address
from unirep_port.embedding.ray_pool import MAX_ATTEMPTS, PROBE_PREFIX, ActorPool
from unirep_port.embedding.reps_sharded import compute_shard

CONNECT_TIMEOUT_S = 10.0  # one TCP connection to --address before ray.init
EXIT_WAIT_S = 10.0  # how long close() waits for a local Ray's workers to exit


@dataclass(frozen=True)
class RayOptions:
    """Where and how the actors run.

    ``address``: a running cluster's address, or None to start a loopback-only local Ray.
    ``workers``: actors (None: the cluster's GPUs with ``gpu``, else its CPUs). ``weights``:
    a weights file/folder, or None for the published ``size`` model. ``lost_timeout_s``: how
    long the run waits with no worker answering before it stops (resumable).
    """

    address: str | None = None
    workers: int | None = None
    gpu: bool = False
    weights: str | None = None
    size: int = 1900
    dashboard: bool = False
    lost_timeout_s: float = 120.0


def start_local_ray(num_cpus: int, dashboard: bool = False) -> None:
    """Start a one-machine Ray that listens on loopback only.

    Ray's services (GCS, raylet, object manager, agents, workers) are unauthenticated and run
    code for whoever can reach them (CVE-2023-48022). With the node address 127.0.0.1 (Ray keeps
    it only with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` set before it is imported, as the CLI
    does; checked here) they bind to loopback, not all interfaces. The dashboard and its
    job-submission API stay off unless ``dashboard`` (then on 127.0.0.1 too).
    ``tests/test_reps_sharded.py`` lists the listening sockets of such a run.
    """
    ray.init(
        address="local",  # a new Ray, never one found on this machine (/tmp/ray, RAY_ADDRESS)
        num_cpus=num_cpus,
        _node_ip_address=LOOPBACK,
        include_dashboard=dashboard,
        dashboard_host=LOOPBACK,
        log_to_driver=False,
    )
    node = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(node).is_loopback:  # Ray was imported before the switch was set
        ray.shutdown()
        raise RuntimeError(
            f"a local Ray would listen on {node}, not loopback only: set "
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Ray is imported, or pass --address"
        )


class _ShardWorker:
    """One actor: probes the output directory, then computes shards with weights it fetches once."""

    def __init__(self, cfg: dict):
        self.cfg = cfg  # plain values only: nothing Ray must keep for a restart
        self.params = None

    def hello(self, i: int, token: str) -> dict:
        """Who and where this actor is; proves it can write into the output directory."""
        node = ray.get_runtime_context().get_node_id()
        probe = Path(self.cfg["out"]) / f"{PROBE_PREFIX}{token}-{i}"
        where = {"pid": os.getpid(), "node": node, "ip": ray.util.get_node_ip_address()}
        try:
            probe.write_text(node)
        except OSError as exc:
            return {**where, "error": f"{type(exc).__name__}: {exc}"}
        return {**where, "probe": probe.name}

    def run_shard(self, weights: list, k: int, start: int, records: list) -> dict:
        """Shard ``k``; ``weights`` is ``[ref]``, the driver's reference to the weights."""
        if self.params is None:  # first shard of this actor, or of its restart
            from unirep_port import jax_port

            self.params = jax_port.load_params(ray.get(weights[0]))
        return compute_shard(self.params, k, start, records, self.cfg)


def _connect(opts: RayOptions) -> bool:
    """Join or start Ray; True if this process started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    if opts.address:
        _join(opts.address)
        started = False
    else:
        start_local_ray(opts.workers or os.cpu_count() or 1, dashboard=opts.dashboard)
        started = True
    interrupt.reclaim()
    return started


def _join(address: str) -> None:
    """Join the cluster at ``address``; a loopback one from this machine's loopback only.

    ``ray.init`` waits for an unreachable cluster without end, so a ``host:port`` address is
    first tried with one TCP connection (:data:`CONNECT_TIMEOUT_S`).
    """
    host, _, port = address.rpartition(":")
    if host and port.isdigit():
        try:
            socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise ValueError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    loopback = is_loopback_address(address)
    kwargs = {"_node_ip_address": LOOPBACK} if loopback else {}
    ray.init(address=address, log_to_driver=False, **kwargs)
    node = ray.util.get_node_ip_address()
    if loopback and not ipaddress.ip_address(node).is_loopback:
        ray.shutdown()
        raise RuntimeError(
            f"joining the loopback cluster {address}, this driver would listen on {node}: set "
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Ray is imported"
        )


def _actor_class(gpu: bool):
    env = {"JAX_PLATFORMS": "cuda" if gpu else "cpu"}
    if not gpu:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return ray.remote(
        num_cpus=1,
        num_gpus=1 if gpu else 0,
        max_restarts=MAX_ATTEMPTS,
        max_task_retries=0,  # the driver re-queues a lost shard itself (to any live actor)
        scheduling_strategy="SPREAD",
        runtime_env={"env_vars": env},
    )(_ShardWorker)


def _load_weights(opts: RayOptions):
    from unirep_port import weights

    return weights.load(opts.weights) if opts.weights else weights.load_published(opts.size)


class RayExecutor:
    """Submit shards to ``workers`` actors, at most two queued per actor; see the module doc."""

    def __init__(self, opts: RayOptions, cfg: dict):
        self._started = _connect(opts)
        self._pool = None
        try:
            self.workers = _capacity(opts)
            actor = _actor_class(opts.gpu)
            # Shipped once to every node that runs an actor: workers need no weights cache.
            weights = ray.put(_load_weights(opts))
            actors = [actor.remote(cfg) for _ in range(self.workers)]
            self._pool = ActorPool(actors, weights, Path(cfg["out"]), opts.lost_timeout_s)
            self._pool.start()
        except BaseException:
            self.close()
            raise

    def submit(self, k: int, start: int, records: list) -> None:
        self._pool.submit(k, start, records)

    def in_flight(self) -> int:
        return self._pool.in_flight()

    def wait(self) -> list[tuple[int, dict | Exception]]:
        """Results of the shards that finished; blocks (in 1 s steps, so signals get through)."""
        return self._pool.wait()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._started:
            ray.shutdown()
            if self._pool is not None:  # a local Ray: its workers are this machine's processes
                _wait_gone([w.where["pid"] for w in self._pool.w if w.where], EXIT_WAIT_S)


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait for ``pids`` to end, so none writes a temporary after the driver removed them
    (``ray.kill`` and ``ray.shutdown`` return before the workers have exited)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # an exited process not yet reaped by its new parent is gone too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _capacity(opts: RayOptions) -> int:
    """The number of actors to start; raises if the cluster could never place them all."""
    kind = "GPU" if opts.gpu else "CPU"
    have = int(ray.cluster_resources().get(kind, 0))
    workers = opts.workers or max(1, have)
    if workers > have:  # actors would wait for resources forever
        raise ValueError(f"--workers {workers} needs {workers} {kind}s; the Ray cluster has {have}")
    return workers
