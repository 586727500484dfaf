"""The Ray executor's books: which shard runs on which actor, which actors answer, and when to stop.

A shard is queued, then sent to an answering actor with fewer than two shards; its result comes
back, or its actor is lost (``RayActorError`` and kin, or its node declared dead), and the shard
is queued again. A lost actor is pinged (``hello``, which also re-checks the output directory
from its possibly new node) every :data:`PING_EVERY_S` until it answers. See ``ray_engine``'s
module doc for the whole story.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import ray

from unirep_port.embedding.reps_sharded import WorkersLost

# Times a shard may lose its worker before the run gives up on it (a shard that kills its
# worker every time must not loop forever); also Ray's restarts of one actor.
MAX_ATTEMPTS = 4
PING_EVERY_S = 2.0  # how often a lost actor is asked whether it is back
PING_GIVE_UP_S = 30.0  # a ping unanswered this long is dropped and sent again
NODES_EVERY_S = 5.0  # how often the node table is read for dead nodes
PROBE_WAIT_S = 10.0  # how long the driver looks for a worker's probe (NFS caches lookups)
PER_ACTOR = 2  # shards sent to one actor at a time
PROBE_PREFIX = ".probe-"  # dot-prefixed: skipped by pyarrow/pandas discovery


@dataclass
class _Worker:
    actor: object
    where: dict | None = None  # its last hello: pid, node, ip
    up: bool = False  # answered and proved it writes where the driver reads
    load: int = 0
    ping: object = None  # an unanswered hello
    ping_sent: float = 0.0
    next_ping: float = 0.0
    done: int = 0  # shards finished
    done_back: int | None = None  # of them since it last came back (None: never lost)
    error: str = ""  # why its last ping failed


class ActorPool:
    """Shards over ``actors`` (``_ShardWorker`` handles); ``weights`` is the driver's reference."""

    def __init__(self, actors: list, weights, out: Path, lost_timeout_s: float):
        self.w = [_Worker(a) for a in actors]
        self._weights = [weights]  # nested: each actor fetches it once, when it needs it
        self._out = out
        self._lost_timeout_s = lost_timeout_s
        self._token = uuid.uuid4().hex[:12]
        self._pending: dict = {}  # ObjectRef -> (shard, worker index)
        self._work: dict[int, tuple[int, list]] = {}  # shard -> (start, records) until done
        self._queue: deque[int] = deque()  # shards waiting for an answering actor
        self._attempts: Counter = Counter()
        self._stalled_since: float | None = None
        self._nodes_read = 0.0

    # ------------------------------------------------------------------ start and stop

    def start(self) -> None:
        """Wait for every actor's hello (or, after ``lost_timeout_s``, for at least one)."""
        for p in self._out.glob(PROBE_PREFIX + "*"):  # left by a killed driver
            p.unlink(missing_ok=True)
        t0 = time.monotonic()
        while not all(w.up for w in self.w):
            self._watch()
            waited = time.monotonic() - t0
            if waited >= self._lost_timeout_s:
                if any(w.up for w in self.w):
                    break
                raise WorkersLost(
                    f"no Ray worker started within {waited:.0f} s (--lost-worker-timeout): "
                    f"{self._describe()}",
                    [],
                )
            time.sleep(0.2)

    def close(self) -> None:
        for i, w in enumerate(self.w):
            back = "" if w.done_back is None else f", {w.done_back} since it came back"
            print(f"ray: worker {i} finished {w.done} shards{back}", file=sys.stderr, flush=True)
            try:
                ray.kill(w.actor)
            except Exception:  # already gone with its node
                pass
        for p in self._out.glob(f"{PROBE_PREFIX}{self._token}-*"):
            p.unlink(missing_ok=True)

    # ------------------------------------------------------------------ shards

    def submit(self, k: int, start: int, records: list) -> None:
        self._work[k] = (start, records)
        self._queue.append(k)
        self._dispatch()

    def in_flight(self) -> int:
        return len(self._pending) + len(self._queue)

    def wait(self) -> list[tuple[int, dict | Exception]]:
        """Results of the shards that finished; blocks (in 1 s steps, so signals get through).

        Raises ``WorkersLost`` once no actor has answered for ``lost_timeout_s`` while shards
        wait.
        """
        while True:
            self._dispatch()
            done = []
            if self._pending:
                done, _ = ray.wait(list(self._pending), num_returns=1, timeout=1.0)
            else:
                time.sleep(0.5)
            out = self._collect(done)
            self._watch()
            if out:
                return out
            self._check_stall()

    def _dispatch(self) -> None:
        while self._queue:
            ready = [i for i, w in enumerate(self.w) if w.up and w.load < PER_ACTOR]
            if not ready:
                return
            i = min(ready, key=lambda j: self.w[j].load)
            k = self._queue.popleft()
            start, records = self._work[k]
            ref = self.w[i].actor.run_shard.remote(self._weights, k, start, records)
            self._pending[ref] = (k, i)
            self.w[i].load += 1

    def _collect(self, done: list) -> list[tuple[int, dict | Exception]]:
        out = []
        for ref in done:
            k, i = self._pending.pop(ref)
            self.w[i].load -= 1
            try:
                res = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # raised by the shard's own code
                cause = exc.cause if isinstance(exc.cause, Exception) else exc
                if not isinstance(cause, ValueError):
                    cause = RuntimeError(f"shard {k}: {type(cause).__name__}: {cause}")
                res = cause
            except ray.exceptions.RayError as exc:  # its actor died or cannot be reached
                res = self._lost(i, k, exc)
                if res is None:
                    continue
            del self._work[k]
            out.append((k, res))
            if isinstance(res, dict):
                w = self.w[i]
                w.done += 1
                w.done_back = None if w.done_back is None else w.done_back + 1
        return out

    def _lost(self, i: int, k: int, exc: Exception) -> Exception | None:
        """Shard ``k`` lost with worker ``i``: queued again, or its error after too many tries."""
        self._mark_lost(i, f"{type(exc).__name__}")
        self._attempts[k] += 1
        if self._attempts[k] > MAX_ATTEMPTS:
            return RuntimeError(
                f"shard {k}: its worker was lost {self._attempts[k]} times (last: worker {i} "
                f"{self._where(i)}: {exc}); not tried again"
            )
        self._queue.appendleft(k)
        return None

    def _mark_lost(self, i: int, why: str) -> None:
        w = self.w[i]
        if w.up:
            w.up = False
            w.next_ping = time.monotonic() + PING_EVERY_S
            print(
                f"ray: worker {i} {self._where(i)} lost ({why}); its shards wait for a live worker",
                file=sys.stderr,
                flush=True,
            )

    # ------------------------------------------------------------------ health

    def _watch(self) -> None:
        """Ping lost actors, welcome those that answer, and give up on dead nodes' shards."""
        now = time.monotonic()
        for i, w in enumerate(self.w):
            if w.up or now < w.next_ping:
                continue
            if w.ping is not None and now - w.ping_sent < PING_GIVE_UP_S:
                continue
            w.ping, w.ping_sent = w.actor.hello.remote(i, self._token), now
        pings = {w.ping: i for i, w in enumerate(self.w) if w.ping is not None}
        if pings:
            ready, _ = ray.wait(list(pings), num_returns=len(pings), timeout=0)
            for ref in ready:
                self._answer(pings[ref], ref)
        if now - self._nodes_read >= NODES_EVERY_S:
            self._nodes_read = now
            self._reap_dead_nodes()

    def _answer(self, i: int, ref) -> None:
        w = self.w[i]
        w.ping = None
        try:
            hello = ray.get(ref)
        except ray.exceptions.RayError as exc:  # still restarting, or dead for good
            w.next_ping = time.monotonic() + PING_EVERY_S
            w.error = f"{type(exc).__name__}: {str(exc)[:300]}"
            return
        self._check_probe(i, hello)
        again = w.where is not None
        w.where, w.up = hello, True
        w.done_back = 0 if again else None
        print(
            f"ray: worker {i} {'back: ' if again else ''}pid {hello['pid']} on {hello['ip']} "
            f"(node {hello['node'][:12]})",
            file=sys.stderr,
            flush=True,
        )

    def _check_probe(self, i: int, hello: dict) -> None:
        """Raise ValueError unless worker ``i`` wrote its probe where the driver reads it."""
        where = f"worker {i} on node {hello['node']} ({hello['ip']})"
        shared = "a Ray cluster run needs -o on a filesystem that every node shares"
        if "error" in hello:
            raise ValueError(f"{where} cannot write to {self._out}: {hello['error']}; {shared}")
        probe = self._out / hello["probe"]
        deadline = time.monotonic() + PROBE_WAIT_S
        while not probe.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        seen = probe.read_text() if probe.exists() else None
        probe.unlink(missing_ok=True)
        if seen != hello["node"]:
            raise ValueError(
                f"{where} wrote {probe.name} into {self._out} on its node, but the driver does "
                f"not find it there: {shared}"
            )

    def _reap_dead_nodes(self) -> None:
        """Shards running on a node Ray declared dead are lost (their result can never come)."""
        alive = {n["NodeID"]: n["Alive"] for n in ray.nodes()}
        for ref, (k, i) in list(self._pending.items()):
            where = self.w[i].where
            if where is not None and not alive.get(where["node"], True):
                del self._pending[ref]
                self.w[i].load -= 1
                self._mark_lost(i, "its node is dead")
                self._queue.appendleft(k)  # not counted against the shard: the node failed

    def _check_stall(self) -> None:
        if any(w.up for w in self.w) or not (self._queue or self._pending):
            self._stalled_since = None
            return
        now = time.monotonic()
        if self._stalled_since is None:
            self._stalled_since = now
        elif now - self._stalled_since >= self._lost_timeout_s:
            raise WorkersLost(
                f"no Ray worker has answered for {now - self._stalled_since:.0f} s "
                f"(--lost-worker-timeout {self._lost_timeout_s:g}): {self._describe()}",
                sorted(self._work),
            )

    def _where(self, i: int) -> str:
        where = self.w[i].where
        return "(not started)" if where is None else f"on node {where['node']} ({where['ip']})"

    def _describe(self) -> str:
        """Each worker's node and whether Ray still counts that node alive."""
        try:
            alive = {n["NodeID"]: n["Alive"] for n in ray.nodes()}
        except Exception:  # the GCS itself is gone
            alive = {}
        parts, lost = [], []
        for i, w in enumerate(self.w):
            if w.where is None:
                parts.append(f"worker {i} never answered ({w.error or 'no reply yet'})")
                continue
            node = w.where["node"]
            state = {True: "alive, not answering", False: "dead"}.get(alive.get(node), "unknown")
            parts.append(f"worker {i} on node {node} ({w.where['ip']}, {state})")
            if alive.get(node) is False and node not in lost:
                lost.append(node)
        nodes = f"lost node(s): {', '.join(lost)}; " if lost else ""
        return nodes + "; ".join(parts)
