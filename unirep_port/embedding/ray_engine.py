"""The Ray executor of ``unirep-port reps --engine ray``: a pool of long-lived actors.

Why actors rather than Ray Data ``map_batches``: the unit of work here is a shard whose output
file, record count and checksum go into the manifest, and a resumed run must skip exactly the
finished shards. With actors the driver keeps that bookkeeping in one place (which shard went
where, what came back), each actor loads and prepares the weights once and keeps its compiled
chunk functions warm for the whole run, and a lost actor is Ray's job: ``max_restarts`` brings
it back (weights prepared again), ``max_task_retries`` re-runs its unfinished shards, and a
shard write is atomic, so a re-run shard simply replaces nothing or an identical file.

Each actor owns one device: one CPU (XLA single-threaded, so N actors use N cores without
oversubscription; its reps are bitwise those of the multi-threaded in-process engine) or, with
``--device gpu``, one GPU.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

import ray

from unirep_port import interrupt
from unirep_port.embedding.reps_sharded import compute_shard

# An actor killed mid-shard is restarted and its shards retried this many times before the run
# gives up on them (a shard that kills its worker every time must not loop forever).
MAX_RESTARTS = 4
LOOPBACK = "127.0.0.1"  # where a local Ray listens: never all interfaces


def start_local_ray(num_cpus: int, dashboard: bool = False) -> None:
    """Start a one-machine Ray that listens on loopback only.

    Ray's services (GCS, raylet, object manager, agents, workers) are unauthenticated and run
    code for whoever can reach them (CVE-2023-48022). With the node address 127.0.0.1 (Ray keeps
    it only with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` set before it is imported, as
    ``reps_sharded`` does; checked here) they bind to loopback, not all interfaces. The
    dashboard and its job-submission API stay off unless ``dashboard`` (then on 127.0.0.1 too).
    ``tests/test_reps_sharded.py`` lists the listening sockets of such a run.
    """
    ray.init(
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
    def __init__(self, canonical_ref: list, cfg: dict):
        from unirep_port import jax_port

        # The weights travel as a nested reference (fetched here, also after a restart).
        self.params = jax_port.load_params(ray.get(canonical_ref[0]))  # prepared once per actor
        self.cfg = cfg

    def pid(self) -> tuple[int, str]:
        return os.getpid(), ray.util.get_node_ip_address()

    def run_shard(self, k: int, start: int, records: list) -> dict:
        return compute_shard(self.params, k, start, records, self.cfg)


class RayExecutor:
    """Submit shards to ``--workers`` actors, at most two queued per actor."""

    def __init__(self, args: argparse.Namespace, cfg: dict):
        from unirep_port import weights

        self._started = False
        self.actors: list = []
        if not ray.is_initialized():
            if args.address:
                ray.init(address=args.address, log_to_driver=False)
            else:
                start_local_ray(
                    args.workers or os.cpu_count(),
                    dashboard=getattr(args, "ray_dashboard", False),
                )
                self._started = True
            interrupt.reclaim()
        gpu = args.device == "gpu"
        res = ray.cluster_resources()
        have = int(res.get("GPU" if gpu else "CPU", 0))
        self.workers = args.workers or max(1, have)
        if self.workers > have:  # actors would wait for resources forever
            self.close()
            raise ValueError(
                f"--workers {self.workers} needs {self.workers} {'GPU' if gpu else 'CPU'}s; the "
                f"Ray cluster has {have}"
            )
        env = {"JAX_PLATFORMS": "cuda" if gpu else "cpu"}
        if not gpu:
            env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        actor = ray.remote(
            num_cpus=1,
            num_gpus=1 if gpu else 0,
            max_restarts=MAX_RESTARTS,
            max_task_retries=MAX_RESTARTS,
            runtime_env={"env_vars": env},
        )(_ShardWorker)
        canonical = (
            weights.load(args.weights) if args.weights else weights.load_published(args.size)
        )
        # Shipped once to every node: workers need no weights cache. Kept referenced here for
        # as long as an actor may be restarted.
        self._weights = ray.put(canonical)
        del canonical
        self.actors = [actor.remote([self._weights], cfg) for _ in range(self.workers)]
        for i, (pid, node) in enumerate(ray.get([a.pid.remote() for a in self.actors])):
            print(f"ray: worker {i} pid {pid} on {node}", file=sys.stderr, flush=True)
        self._pending: dict = {}  # ObjectRef -> (shard, actor index)
        self._load = [0] * self.workers

    def submit(self, k: int, start: int, records: list) -> None:
        i = min(range(self.workers), key=self._load.__getitem__)
        ref = self.actors[i].run_shard.remote(k, start, records)
        self._pending[ref] = (k, i)
        self._load[i] += 1

    def in_flight(self) -> int:
        return len(self._pending)

    def wait(self) -> list[tuple[int, dict | Exception]]:
        """Results of the shards that finished; blocks (in 1 s steps, so signals get through)."""
        while True:
            done, _ = ray.wait(list(self._pending), num_returns=1, timeout=1.0)
            if done:
                break
        out = []
        for ref in done:
            k, i = self._pending.pop(ref)
            self._load[i] -= 1
            try:
                out.append((k, ray.get(ref)))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, Exception) else exc
                out.append(
                    (
                        k,
                        cause
                        if isinstance(cause, ValueError)
                        else RuntimeError(f"shard {k}: {type(cause).__name__}: {cause}"),
                    )
                )
            except ray.exceptions.RayError as exc:  # an actor lost more often than allowed
                out.append((k, RuntimeError(f"shard {k}: worker lost: {exc}")))
        return out

    def close(self) -> None:
        for a in self.actors:
            ray.kill(a)
        if self._started:
            ray.shutdown()
