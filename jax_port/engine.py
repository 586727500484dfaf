"""The fast representation engine: one compiled K-step chunk per batch size, continuous batching.

Design (why it is fast and compiles a bounded number of times):

* ``_chunk`` advances B "slots" by K tokens with a ``lax.scan`` inside ``jit``. Its carry holds
  each layer's (c, h) plus the rep accumulators (sum of h, final h, final c), so no (B, T, H)
  array is ever built and sequence length never appears in a compiled shape: one compile per
  batch size (and precision / device set), whatever the length mix.
* The driver sorts sequences longest first and keeps B slots busy: at each chunk boundary a slot
  whose sequence ended is reset (row mask) and refilled with the next sequence, so padding waste
  is under K steps per sequence. The reps of the rows being reset are returned by that same
  call, so reading them never stalls the device; they are pulled to the host in bulk.
* No idle tail: once every sequence has a slot, the busy rows move (on the host) to the
  smallest batch of :func:`tail_sizes` that holds them, so the last sequences do not pay for
  B slots each step -- by default only where the saving, estimated from the run's own chunk
  time, beats the cost (a host round trip, and a compile unless that size is at hand). Those
  sizes are a fixed set of powers of two, so a run compiles at most
  ``1 + len(tail_sizes(B, ...))`` chunk functions, and the same ones in every run. A row's
  result does not depend on which batch it ran in while the batches share a weight layout
  (checked bitwise by ``tests/test_engine_tail.py`` on XLA CPU).
* The weights' layout per batch size: (n_out, n_in) or (n_in, n_out), whichever this machine's
  kernels multiply faster at that batch (:mod:`jax_port.layout`, a probe kept per machine), so a
  few-row batch of a narrow model does not run the layout that only pays at many rows. A batch
  size always takes the same layout, so the loop and the chunks give the same bits.
* One loop for a job that fits one batch: when every sequence has a slot from the start and the
  tail could not move to a smaller batch, the whole run is one compiled ``while`` loop over the
  longest length (:func:`_loop_body`): no chunk is dispatched from the host, which dominates when a
  step costs microseconds (the 64/256 models, a few sequences). The same step on the same slots,
  so the same bits as the chunked run (``tests/test_single_loop.py``). The token array's length
  is bucketed to a power of two (one compile per batch size and bucket); the loop's trip count
  is an argument, so padding to the bucket costs no steps.
* The carry buffers are donated; the batch axis is sharded over a 1-D ``'batch'`` mesh of the
  local devices (B is a multiple of the device count); weights are replicated.

Process state: :data:`PROCESS` (one :class:`ProcessState`) holds what the public counters report
(:func:`compile_count`, :func:`run_stats`, :func:`last_plan`) and what this process has learnt
(executables it has run, the latest compile time per width). It is a module global because it
is process-wide by contract: a trace increments the compile count from inside ``jit``, where no
run's state is reachable, and the tail's "is this executable at hand" depends on earlier calls.
A run's own state is a :class:`_Run` and a :class:`_Slots`, passed explicitly.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from unirep_port.jax_port import aot_cache, cell, compile_cache, layout, model
from unirep_port.jax_port import precision as _precision
from unirep_port.jax_port.params import Params

PRECISIONS = _precision.PRECISIONS
# A compile's cost before this process has timed one (seconds; the 1900 chunk's compile is the
# slowest, see benchmarks/results/history/reps-e2e-issue18.json). The estimate only decides
# whether a tail shrink pays.
DEFAULT_COMPILE_S = 1.0
# A chunk's cost at b of B slots, as a fraction of its cost at B: 1 - TAIL_SLOPE * (1 - b / B).
# From the 1900 chunk's times per batch size (docs/speed.md, "The tail"): small batches stream
# the same weights, so they cost more than b / B.
TAIL_SLOPE = 0.8
_STAT_KEYS = ("chunks", "loops", "slot_steps", "tokens", "shrinks", "shrinks_declined")


@dataclasses.dataclass
class ProcessState:
    """What the engine keeps across calls in one process (see the module docstring for why).

    ``traces``: compiles of the engine's jitted functions; ``stats``: :func:`run_stats`'s
    counters; ``last_plan``: the latest call's precision plan; ``seen``: executables run here,
    keyed ``(B, K, precision, weights' dtype, cell, hidden, layers, devices)``; ``compile_s``:
    seconds the latest chunk compile took, per model width (the "auto" tail's cost estimate).
    """

    traces: int = 0
    stats: dict = dataclasses.field(
        default_factory=lambda: {
            **dict.fromkeys(_STAT_KEYS, 0),
            "seconds": 0.0,
            "tail_seconds": 0.0,
        }
    )
    last_plan: _precision.Plan | None = None
    seen: set = dataclasses.field(default_factory=set)
    compile_s: dict[int, float] = dataclasses.field(default_factory=dict)


PROCESS = ProcessState()


def note_trace() -> None:
    """Count one trace (= compile) of a jitted function of the port; called while tracing."""
    PROCESS.traces += 1


def last_plan():
    """The :class:`jax_port.precision.Plan` of the latest :func:`run_reps` call (None before)."""
    return PROCESS.last_plan


def compile_count() -> int:
    """How many times the engine's jitted functions were traced (= compiled) in this process."""
    return PROCESS.traces


def _chunk_body(prep, state, tokens_t, n_valid, reset):
    """Reset the ``reset`` rows, then run K stacked steps over ``tokens_t`` (K, B).

    Args:
        prep: :class:`model.Prepared` (replicated); its ``cell`` is static: the step's
            functions are ``prep.cell``'s.
        state: ``(carries, reps)``; carries per layer (c, h) each (B, H); reps (sum h, final h,
            final c) each (B, H).
        tokens_t: (K, B) int32 tokens, time-major.
        n_valid: (B,) int32, how many of the K steps are real for each row (0..K).
        reset: (B,) bool, rows that start a new sequence at this chunk.

    Returns:
        The new state and the (B, 3, H) reps each row had *before* the reset.
    """
    note_trace()  # runs once per trace, i.e. per compile
    carries, reps = state
    out = jnp.stack(reps, axis=1)  # 3 x (B, H) -> (B, 3, H)
    keep = ~reset[:, None]  # (B, 1)
    carries, reps = jax.tree_util.tree_map(lambda a: jnp.where(keep, a, 0.0), (carries, reps))
    steps = jnp.arange(tokens_t.shape[0], dtype=jnp.int32)  # (K,)

    def body(st, xs):
        carries, reps = st
        tok, t = xs  # (B,), ()
        carries, h, c = model.stack_step(prep, tok, carries)  # h, c: (B, H)
        reps = prep.cell.update_reps(reps, h, c, t < n_valid)  # valid: (B,)
        return (carries, reps), None

    (carries, reps), _ = jax.lax.scan(body, (carries, reps), (tokens_t, steps))
    return (carries, reps), out


# Module-level jitted functions: jax.jit's own cache is keyed on the argument structure, which
# includes the static ``Prepared.cell``, so another CellFns compiles anew and the default one
# never recompiles; nothing to clear.
_chunk = jax.jit(_chunk_body, donate_argnums=(1,))


def default_chunk_len(platform: str, hidden: int = 1900) -> int:
    """K, the steps per compiled chunk, per backend and model width.

    A sequence wastes on average K/2 padded steps at its end, and each chunk costs one host
    dispatch. On CPU a 1900-wide step costs far more than a dispatch, so K=4 wastes little at
    238 aa and the dispatches cost about as much (K=16 lost on 64-aa sequences; docs/speed.md);
    the 256/64 models' steps are about 100x cheaper, so they keep K=16. Accelerators run a step
    in a fraction of a dispatch: K=64 amortises it. Jobs that fit one batch skip chunks
    altogether (:func:`_loop_body`).
    """
    if platform != "cpu":
        return 64
    return 4 if hidden >= 1024 else 16


def run_stats() -> dict[str, float]:
    """Counters over all :func:`run_reps` calls of this process: chunks run, single ``loops``
    run (whole jobs in one compiled loop), slot-steps computed (B*K per chunk, B*steps per
    loop), real tokens, tail ``shrinks``, wall ``seconds`` in the engine and ``tail_seconds``
    of them (after every sequence had a slot, compiles excluded), and ``efficiency`` = tokens /
    slot-steps."""
    out = dict(PROCESS.stats)
    out["efficiency"] = out["tokens"] / max(out["slot_steps"], 1)
    return out


def make_mesh(device=None) -> Mesh:
    """A 1-D ``'batch'`` mesh over ``device`` (one device, or a list) or all local devices."""
    if device is None:
        devs = jax.local_devices()
    elif isinstance(device, Sequence):
        devs = list(device)
    else:
        devs = [device]
    return Mesh(np.array(devs), ("batch",))


def _allowed_size(want: int, batch_size: int, n_dev: int) -> int:
    """``want`` rounded up to an allowed size (powers of two below 8, multiples of 8 from 8),
    capped by ``batch_size``, then rounded up to the device count."""
    if want < 8:
        b = 1
        while b < want:
            b *= 2
    else:
        b = -(-want // 8) * 8
    b = min(b, batch_size)
    return -(-b // n_dev) * n_dev


def schedule_chunks(lengths, slots: int, chunk_len: int = 1) -> int:
    """Chunks a run of ``slots`` slots takes over sequences of ``lengths`` (tokens each), as
    :func:`run_reps` schedules them: longest first, each into the slot that frees first, at a
    chunk boundary, for ``ceil(length / chunk_len)`` chunks. The tail's smaller batches change
    a chunk's cost, not the count."""
    import heapq

    need = -(-np.sort(np.asarray(lengths, np.int64))[::-1] // max(1, int(chunk_len)))
    free = [0] * max(1, int(slots))  # when each slot is next free, in chunks
    end = 0
    for c in need.tolist():
        start = heapq.heappop(free)
        end = max(end, start + c)
        heapq.heappush(free, start + c)
    return end


def pick_batch(
    n: int, batch_size: int, n_dev: int, lengths=None, chunk_len: int | None = None
) -> int:
    """Slots for ``n`` sequences, from a small fixed set of sizes, rounded to the device count.

    With continuous batching a run lasts about ``max(total / B, max_len)`` steps, so the slots
    that pay for themselves are ``total_tokens / max_len`` (``n`` when all lengths are equal):
    more only idle at the end, fewer lose matmul efficiency (``matmul_gflops`` rises with B in
    ``benchmarks/results/amd-epyc-2c-cpu.json``). That count is rounded *up* to the next
    allowed size -- powers of two below 8, multiples of 8 from 8 -- and capped by ``batch_size``;
    at most one size is compiled per call and at most ``batch_size / 8 + 3`` sizes exist.

    Given ``chunk_len`` (and ``lengths``), the count is then lowered to the fewest allowed slots
    whose schedule (:func:`schedule_chunks`) takes no more chunks than that count's: the run
    is no longer in steps and each step computes fewer rows. It matters when the sequences come
    in whole waves: 400 avGFP variants of 239 tokens with ``batch_size=256`` take two waves on
    256 slots, the second 144 rows full, and as many on 200 slots.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    want = n
    has_lengths = lengths is not None and len(lengths)
    if has_lengths:
        want = -(-int(np.sum(lengths)) // int(np.max(lengths)))  # ceil(total / max_len)
    want = max(1, min(want, n, batch_size))
    b = _allowed_size(want, batch_size, n_dev)
    if not has_lengths or chunk_len is None or b <= 8:
        return b
    chunks = schedule_chunks(lengths, b, chunk_len)
    sizes = sorted({_allowed_size(s, batch_size, n_dev) for s in range(1, b + 1)})
    lo, hi = 0, sizes.index(b)  # the smallest size that is as short (binary search; checked)
    while lo < hi:
        mid = (lo + hi) // 2
        if schedule_chunks(lengths, sizes[mid], chunk_len) <= chunks:
            hi = mid
        else:
            lo = mid + 1
    return sizes[lo] if schedule_chunks(lengths, sizes[lo], chunk_len) <= chunks else b


def default_tail_floor(platform: str) -> int | None:
    """The smallest batch the tail shrinks to (None: the tail keeps the full batch).

    On a CPU a step's cost falls with the number of slots, so the last sequences run on
    halved batches down to 8 slots (a fixed set of power-of-two sizes: at most
    ``log2(B / 8) + 1`` chunk compiles per run, the same sizes in every run). Accelerators keep
    B: their step time barely depends on B at these sizes (not measured here).
    """
    return 8 if platform == "cpu" else None


def tail_sizes(batch: int, floor: int | None, n_dev: int) -> list[int]:
    """The smaller batches a run with ``batch`` slots may continue on, largest first.

    Powers of two below ``batch`` down to ``floor`` (at least 2), each rounded up to the device
    count. Never one slot: XLA's CPU kernel for a single row sums in another order, so a row's
    result would depend on the batch it ran in (from two rows up it does not; checked bitwise by
    ``tests/test_engine_tail.py``).
    """
    if floor is None or floor < 1:
        return []
    floor = max(floor, 2)
    out, p = [], 1
    while p < batch:
        if p >= floor:
            q = -(-p // n_dev) * n_dev
            if q < batch and q not in out:
                out.append(q)
        p *= 2
    return sorted(out, reverse=True)


def _loop_body(prep, stack, tokens_t, lengths, n_steps, ragged=True):
    """A whole job in one compiled loop: ``n_steps`` stacked steps over ``tokens_t`` (T, B).

    Args:
        prep: :class:`model.Prepared` (replicated), as :func:`_chunk_body`.
        stack: None, or ``prep``'s :class:`model.Stack`: then the layers run skewed in time,
            every layer's product batched over the layers (:func:`model.skewed_loop`), where
            :func:`use_skewed` takes that.
        tokens_t: (T, B) int32 tokens, time-major, T >= ``n_steps``.
        lengths: (B,) int32 tokens of each row (0 for an empty slot).
        n_steps: () int32, the longest row's length: the trip count, not a compiled shape.
        ragged: (static) False when every row that is read back has ``n_steps`` tokens: then
            every step is valid for them, the mask is a constant and XLA drops its selects
            (an empty slot's reps are then garbage, and never read).

    Returns:
        The (B, 3, H) reps (sum of h, final h, final c). Step ``t`` is :func:`_chunk_body`'s
        step with ``valid = t < lengths``, on the same rows: the same bits, skewed or not.
    """
    note_trace()  # runs once per trace, i.e. per compile
    every = jnp.ones(lengths.shape, bool)  # (B,)

    def fold(t, h, c, reps):  # the top layer's output at token t into the reps
        return prep.cell.update_reps(reps, h, c, t < lengths if ragged else every)  # (B,)

    def fold_skewed(t, h, c, reps):  # t < 0: the top layer has not started, h and c are not its
        return prep.cell.update_reps(reps, h, c, (t >= 0) & (t < lengths if ragged else every))

    z = jnp.zeros((tokens_t.shape[1], prep.cells[0].wmh.shape[0]), jnp.float32)  # (B, H)
    if stack is not None:
        reps = model.skewed_loop(prep, stack, tokens_t, n_steps, fold_skewed, (z, z, z))
        return jnp.stack(reps, axis=1)  # 3 x (B, H) -> (B, 3, H)

    def cond(st):
        return st[0] < n_steps

    def body(st):
        t, carries, reps = st
        tok = jax.lax.dynamic_index_in_dim(tokens_t, t, 0, keepdims=False)  # (T, B) -> (B,)
        carries, h, c = model.stack_step(prep, tok, carries)  # h, c: (B, H)
        return t + 1, carries, fold(t, h, c, reps)

    carries = tuple((z, z) for _ in prep.cells)  # the batch axis is sharded as the tokens'
    _, _, reps = jax.lax.while_loop(cond, body, (jnp.int32(0), carries, (z, z, z)))
    return jnp.stack(reps, axis=1)  # 3 x (B, H) -> (B, 3, H)


# One jitted function per ``ragged`` (so each has ``.lower`` for jax_port.aot_cache); nothing to
# donate: no output has the state's shapes.
_LOOPS = {r: jax.jit(functools.partial(_loop_body, ragged=r)) for r in (True, False)}


def length_bucket(n_steps: int) -> int:
    """The token array's length for a loop of ``n_steps``: the next power of two, at least 32.

    Only the array's shape is bucketed (the trip count is an argument), so a loop compiles once
    per batch size and bucket, and a bucket's padding costs memory, not steps."""
    b = 32
    while b < n_steps:
        b *= 2
    return b


def run_reps(
    token_lists: list[np.ndarray],
    params: model.Model | Params,
    *,
    batch_size: int = 256,
    chunk_len: int | None = None,
    precision: str = "highest",
    device=None,
    on_tokens: Callable[[int], None] | None = None,
    tail_floor: int | None | str = "auto",
    single_loop: bool | None = None,
    skewed: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reps of tokenised sequences (start token first), returned in input order.

    Args:
        token_lists: int32 token arrays, one per sequence.
        params: a :class:`jax_port.model.Model` (its weights and cell functions), or
            :class:`jax_port.params.Params` (prepared with the default cell,
            ``model.as_model``).
        batch_size: maximum number of slots B.
        chunk_len: K, steps per compiled chunk; None picks :func:`default_chunk_len`.
        precision: "highest" (f32 matmuls) or "fast" (bf16 inputs, f32 accumulation where a
            probe on this machine measures it faster; else a logged notice and "highest"; see
            :mod:`jax_port.precision`), or "bf16" / "tf32" to name one path.
        device: a device or list of devices (default: all local devices).
        on_tokens: called with the number of real tokens of each chunk once it has run (of the
            whole job, once, for a single loop).
        tail_floor: once every sequence has a slot and the busy slots fit a smaller batch of
            :func:`tail_sizes`, the run continues on that batch; this is the smallest one.
            "auto": down to :func:`default_tail_floor`, and only where it pays (below);
            an int: always, down to that batch; None: keep B to the end.
        single_loop: run the job as one compiled loop (:func:`_loop_body`) instead of chunks. None
            (default): where every sequence fits the first batch and the tail has no smaller
            batch to move to (:func:`use_single_loop`); True: all sequences in one batch of at
            most ``batch_size`` slots (else ValueError); False: always chunks.
        skewed: a single loop of a stacked model runs its layers skewed in time
            (:func:`model.skewed_loop`: the same bits, fewer kernels per step). None (default):
            where :func:`use_skewed` says so; True / False: always / never.

    With ``tail_floor="auto"`` a shrink to b slots is taken when its saving, estimated from this
    run's own chunk time (``remaining chunks x chunk time x TAIL_SLOPE x (1 - b / B)``), is more
    than its cost: one chunk's time (the state's round trip through the host) plus, if b's
    executable is not at hand (run in this process, or stored by :mod:`jax_port.aot_cache`),
    a compile (:data:`DEFAULT_COMPILE_S` until this process has timed one). A first run on a
    few hundred proteins then skips tail compiles that would cost more than they save; a
    long-tailed mix still shrinks.

    Returns:
        ``(h_avg, h_final, c_final)`` float32 arrays of shape (n, H).
    """
    run = _setup(token_lists, params, batch_size, chunk_len, precision, device, tail_floor)
    run.on_tokens = on_tokens
    n = len(token_lists)
    if single_loop and n > run.batch:  # one batch that holds them all
        if n > batch_size:
            raise ValueError(f"single_loop: {n} sequences do not fit batch_size={batch_size}")
        run.batch = _allowed_size(n, batch_size, run.n_dev)
    slots = _Slots.start(run)
    if single_loop is None:
        single_loop = use_single_loop(n, slots.B, run.lengths, slots.smaller)
    with jax.default_matmul_precision(run.plan.matmul_precision):
        if single_loop:
            _run_loop(run, slots, skewed)
        else:
            _run_chunks(run, slots)
    t_end = time.perf_counter()
    PROCESS.stats["seconds"] += t_end - run.t_start
    if slots.t_tail is not None:  # compiles of the tail's batches are compile time, not tail time
        tail_compiles = compile_cache.counts()["seconds"] - slots.c_tail
        PROCESS.stats["tail_seconds"] += t_end - slots.t_tail - tail_compiles
    out = run.out
    out[:, 0] /= run.lengths[:, None].astype(np.float32)  # mean over all L+1 positions
    return out[:, 0], out[:, 1], out[:, 2]


# The most rows at which a stacked model's single loop runs skewed on a CPU, by hidden size (a
# stacked model of another width: one row, where skewing won on both). From the skew sweeps
# (``docs/speed.md``, "The layers skewed at a few rows").
SKEW_MAX_ROWS = {64: 4, 256: 32}


def use_skewed(platform: str, n_layers: int, batch: int, hidden: int) -> bool:
    """Whether a single loop runs its layers skewed in time (:func:`model.skewed_loop`): a
    stacked model on a CPU, at most :data:`SKEW_MAX_ROWS` rows (one for a width not there).

    Skewing never changes a bit (``tests/test_skewed_loop.py``), only the kernels a step runs:
    each product is one batched product over the layers instead of one per layer. While the
    products are small, their number sets a step's time and skewing pays: on the 64 model up
    to 4 rows, on the 256 model up to 32. Above that XLA:CPU's batched GEMM lost to its
    separate ones (64 model, 32-64 rows) or tied (256 model, 64 rows), so those keep the layers
    one after another. The measurements: ``docs/speed.md``, "The layers skewed at a few rows"
    (``benchmarks/results/skewed-loop-rows.json``, written by ``small_batch --skew-only``).
    Not measured on an accelerator: plain there.
    """
    if platform != "cpu" or n_layers < 2:
        return False
    return batch <= SKEW_MAX_ROWS.get(hidden, 1)


def use_single_loop(n: int, batch: int, lengths: np.ndarray, smaller: list[int]) -> bool:
    """Whether a job runs as one loop: all ``n`` sequences fit the ``batch`` slots and the tail
    would stay on them (no smaller batch in ``smaller``, or lengths within a quarter of each
    other, so the rows finish together). Otherwise the chunked engine's tail can pay."""
    if not n or n > batch:
        return False
    return not smaller or 4 * int(np.min(lengths)) >= 3 * int(np.max(lengths))


@dataclasses.dataclass
class _Run:
    """What one :func:`run_reps` call fixes before it starts (read-only after :func:`_setup`)."""

    token_lists: list[np.ndarray]
    lengths: np.ndarray  # (n,) int64 tokens per sequence
    hidden: int
    K: int
    auto: bool  # tail_floor == "auto"
    floor: int | None
    n_dev: int
    mesh: Mesh
    plan: _precision.Plan
    prep: model.Prepared  # on the devices, replicated
    n_layers: int
    batch: int  # the first batch's slots
    out: np.ndarray  # (n, 3, H) float32, filled in as sequences finish
    t_start: float
    c_start: float  # compile seconds before the run
    model: model.Model
    split: tuple[str, ...] | None  # the matrices rounded to bf16 (fast mode), or None
    platform: str
    on_tokens: Callable[[int], None] | None = None

    def out_in(self, b: int) -> bool:
        """The matrices' layout at ``b`` slots (:func:`jax_port.layout.out_in`)."""
        return layout.out_in(self.platform, self.hidden, b)

    def prep_for(self, b: int, stacked: bool = False):
        """The weights on the devices in ``b`` slots' layout (placed once per layout); with
        ``stacked``, ``(weights, their model.Stack)``."""
        return self.model.on_devices(self.mesh, self.split, self.out_in(b), stacked)

    @property
    def row_sh(self):
        return NamedSharding(self.mesh, P("batch"))

    @property
    def tok_sh(self):
        return NamedSharding(self.mesh, P(None, "batch"))

    @property
    def one_sh(self):
        return NamedSharding(self.mesh, P())

    @property
    def cacheable(self) -> bool:
        return self.prep.cell is cell.DEFAULT_CELL

    def name(self, b: int, kind: str = "chunk") -> str:
        """What an executable's key cannot see in its arguments (the layout is static data of
        the weights, named here as well)."""
        lay = "out_in" if self.out_in(b) else "in_out"
        if kind == "chunk":
            return f"chunk|{self.plan.matmul_precision}|K={self.K}|{lay}"
        return f"{kind}|{self.plan.matmul_precision}|{lay}"

    def seen_key(self, b: int) -> tuple:
        devs = tuple(d.id for d in self.mesh.devices.flat)
        dtype = str(self.prep.cells[0].wh.dtype)
        mp, lay = self.plan.matmul_precision, self.out_in(b)
        return (b, self.K, mp, dtype, self.prep.cell, self.hidden, self.n_layers, devs, lay)


def _setup(token_lists, params, batch_size, chunk_len, precision, device, tail_floor) -> _Run:
    """Check the tokens, pick K, B and the precision plan, put the weights on the devices."""
    m = model.as_model(params)
    model.check_tokens(token_lists, m.weights.tab_xw.shape[0])
    n, hid = len(token_lists), m.hidden
    lengths = np.array([len(t) for t in token_lists], np.int64)
    mesh = make_mesh(device)
    platform = mesh.devices.flat[0].platform
    K = int(chunk_len) if chunk_len else default_chunk_len(platform, hid)
    if K < 1:
        raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
    n_dev = mesh.devices.size
    B = pick_batch(n, batch_size, n_dev, lengths, K)
    auto = isinstance(tail_floor, str) and tail_floor == "auto"
    floor = default_tail_floor(platform) if auto else tail_floor
    plan = _precision.resolve(precision, mesh.devices.flat[0], B, hid)
    PROCESS.last_plan = plan
    t_start = time.perf_counter()
    c_start = compile_cache.counts()["seconds"]
    split = _precision.FAST_SPLIT if plan.used == "bf16" else None  # matrices -> bf16
    prep = m.on_devices(mesh, split)  # replicated, placed once per model and mesh
    out = np.zeros((n, 3, hid), np.float32)
    return _Run(
        list(token_lists), lengths, hid, K, auto, floor, n_dev, mesh, plan, prep,
        m.n_layers, B, out, t_start, c_start, m, split, platform,
    )  # fmt: skip


@dataclasses.dataclass
class _Slots:
    """The scheduling state of one run: which sequence each of the B slots holds, how far it
    is, the device state, and the chunks queued or waiting to be read back."""

    B: int
    smaller: list[int]  # tail batches still allowed, largest first
    state: tuple | None  # (carries, reps) on the devices, B rows (chunked runs only)
    order: Iterator[int]  # sequences not yet given a slot, longest first
    left: int  # how many of them
    slot_seq: np.ndarray  # (B,) sequence in each slot, -1 if none
    slot_pos: np.ndarray  # (B,) tokens of it already run
    step_fns: dict[int, Callable] = dataclasses.field(default_factory=dict)
    pending: list = dataclasses.field(default_factory=list)  # (reps array, [(slot, seq)])
    inflight: deque = dataclasses.field(default_factory=deque)  # (array, tokens) not yet done
    last_args: tuple | None = None  # the latest chunk's arguments (its state donated)
    chunks_run: int = 0
    t_tail: float | None = None  # when every sequence had a slot
    c_tail: float = 0.0  # compile seconds then

    @classmethod
    def start(cls, run: _Run) -> _Slots:
        B = run.batch
        order = iter(np.argsort(-run.lengths, kind="stable").tolist())
        return cls(
            B, tail_sizes(B, run.floor, run.n_dev), None, order, len(run.lengths),
            np.full(B, -1, np.int64), np.zeros(B, np.int64),
        )  # fmt: skip


def _zero_state(run: _Run, B: int) -> tuple:
    """``(carries, reps)`` at zero for B slots on the devices, in distinct (donated) buffers."""
    zeros = [np.zeros((B, run.hidden), np.float32) for _ in range(2 * run.n_layers + 3)]
    carries = tuple((zeros[2 * i], zeros[2 * i + 1]) for i in range(run.n_layers))
    return jax.device_put((carries, tuple(zeros[-3:])), run.row_sh)


def _run_loop(run: _Run, s: _Slots, skewed: bool | None = None) -> None:
    """The whole job as one compiled loop on the first batch's slots (longest first, as the
    chunked run places them)."""
    n = len(run.lengths)
    rows = np.array([next(s.order) for _ in range(n)], np.int64)  # slot -> sequence
    n_steps = int(run.lengths.max())
    toks = np.zeros((length_bucket(n_steps), s.B), np.int32)  # (T, B)
    lens = np.zeros(s.B, np.int32)
    for slot, j in enumerate(rows.tolist()):
        toks[: run.lengths[j], slot] = run.token_lists[j]
        lens[slot] = run.lengths[j]
    if skewed is None:
        skewed = use_skewed(run.platform, run.n_layers, s.B, run.hidden)
    stacked = run.n_layers > 1 and skewed
    placed = run.prep_for(s.B, stacked=True) if stacked else (run.prep_for(s.B), None)
    args = (
        *placed,
        *_inputs(run, (toks, run.tok_sh), (lens, run.row_sh), (np.int32(n_steps), run.one_sh)),
    )
    ragged = bool(run.lengths.min() != n_steps)  # static: equal rows drop the mask's selects
    name = run.name(s.B, f"loop|ragged={ragged}|skewed={stacked}")
    fn = aot_cache.chunk_call(_LOOPS[ragged], args, 0, name, run.cacheable)
    reps = np.asarray(fn(*args))  # (B, 3, H)
    run.out[rows] = reps[:n]
    tokens = int(run.lengths.sum())
    st = PROCESS.stats
    st["loops"] += 1
    st["slot_steps"] += s.B * n_steps
    st["tokens"] += tokens
    if run.on_tokens is not None:
        run.on_tokens(tokens)


def _run_chunks(run: _Run, s: _Slots) -> None:
    """Continuous batching: refill finished slots at each chunk boundary, shrink the tail."""
    s.state = _zero_state(run, s.B)
    while True:
        reset, done = _refill(run, s)
        busy = np.flatnonzero(s.slot_seq >= 0)
        if not len(busy):
            if done:
                _harvest_host(s.state, done, run.out)
            break
        if not s.left and s.t_tail is None:
            s.t_tail, s.c_tail = time.perf_counter(), compile_cache.counts()["seconds"]
        if not s.left:
            reset, done = _maybe_shrink(run, s, busy, reset, done)
        _dispatch(run, s, reset, done)
    while s.inflight:
        _retire(s.inflight.popleft(), run.on_tokens)
    _drain(s.pending, run.out)


def _refill(run: _Run, s: _Slots) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Free the slots whose sequence ended and give them the next sequences.

    Returns the (B,) rows to reset and the (slot, sequence) pairs that finished."""
    reset = np.zeros(s.B, bool)
    done = []
    for slot in range(s.B):
        j = s.slot_seq[slot]
        if j >= 0 and s.slot_pos[slot] >= run.lengths[j]:
            done.append((slot, int(j)))
            s.slot_seq[slot] = -1
        if s.slot_seq[slot] < 0 and s.left:
            s.slot_seq[slot], s.slot_pos[slot], reset[slot] = next(s.order), 0, True
            s.left -= 1
    return reset, done


def _maybe_shrink(run: _Run, s: _Slots, busy: np.ndarray, reset, done):
    """Move the ``busy`` rows to the smallest tail batch that holds them, where that pays.

    Returns the reset mask and finished pairs for the (possibly new) batch."""
    fits = [b for b in s.smaller if b >= len(busy)]
    if not fits or fits[-1] >= s.B:
        return reset, done
    b = fits[-1]
    if not _shrink_pays(run, s, b, busy):
        PROCESS.stats["shrinks_declined"] += 1
        s.smaller = [x for x in s.smaller if x != b]  # its saving only falls
        return reset, done
    s.state = _compact(s.state, busy, b, done, run.out, run.row_sh)  # (B, H) rows -> (b, H)
    pad = b - len(busy)
    s.slot_seq = np.concatenate([s.slot_seq[busy], np.full(pad, -1)])
    s.slot_pos = np.concatenate([s.slot_pos[busy], np.zeros(pad, np.int64)])
    reset = np.concatenate([reset[busy], np.zeros(pad, bool)])
    s.B = b
    s.smaller = [x for x in s.smaller if x < b]
    PROCESS.stats["shrinks"] += 1
    return reset, []


def _shrink_pays(run: _Run, s: _Slots, b: int, busy: np.ndarray) -> bool:
    """Whether moving the ``busy`` rows to ``b`` slots saves more than it costs (always, unless
    the tail floor is "auto"; see :func:`run_reps`)."""
    if not run.auto:
        return True
    if not s.chunks_run:
        return False
    left = run.lengths[s.slot_seq[busy]] - s.slot_pos[busy]
    left_chunks = int(np.max(-(-left // run.K)))
    compiles = compile_cache.counts()["seconds"] - run.c_start
    t_chunk = max(time.perf_counter() - run.t_start - compiles, 0.0) / s.chunks_run
    saving = left_chunks * t_chunk * TAIL_SLOPE * (1 - b / s.B)
    cost = t_chunk
    if layout.decided(run.platform, run.hidden, b) is None:
        # b's layout would need a probe: neither it nor b's executable is at hand (a shrink
        # declined here times nothing), and a shrink pays the probe too (about a compile's worth)
        return saving > cost + 2 * PROCESS.compile_s.get(run.hidden, DEFAULT_COMPILE_S)
    live = (run.prep_for(b), s.state, *s.last_args[2:])  # last args' state was donated
    at_hand = aot_cache.at_hand(_shaped(live, b), run.name(b), run.cacheable)
    if run.seen_key(b) not in PROCESS.seen and not at_hand:
        cost += PROCESS.compile_s.get(run.hidden, DEFAULT_COMPILE_S)
    return saving > cost


def _dispatch(run: _Run, s: _Slots, reset: np.ndarray, done: list[tuple[int, int]]) -> None:
    """Run one chunk on the current slots (compiling B's executable the first time), queue
    the reps of the ``done`` pairs for reading back, and keep two chunks in flight."""
    B, K = s.B, run.K
    toks = np.zeros((K, B), np.int32)
    n_valid = np.zeros(B, np.int32)
    for slot in np.flatnonzero(s.slot_seq >= 0):
        seg = run.token_lists[s.slot_seq[slot]][s.slot_pos[slot] : s.slot_pos[slot] + K]
        toks[: len(seg), slot] = seg
        n_valid[slot] = len(seg)
    args = (
        run.prep_for(B),
        s.state,
        *_inputs(run, (toks, run.tok_sh), (n_valid, run.row_sh), (reset, run.row_sh)),
    )
    first = B not in s.step_fns
    if first:  # one executable per batch size (serialized where cached)
        c0 = compile_cache.counts()["seconds"]
        s.step_fns[B] = aot_cache.chunk_call(_chunk, args, (s.state, 0), run.name(B), run.cacheable)
    s.state, outgoing = s.step_fns[B](*args)
    if first:
        took = compile_cache.counts()["seconds"] - c0
        if took > 0:
            PROCESS.compile_s[run.hidden] = took
        PROCESS.seen.add(run.seen_key(B))
    s.last_args = args
    s.chunks_run += 1
    s.slot_pos += K
    if done:
        s.pending.append((outgoing, done))
    if len(s.pending) > 8:  # bounded device memory; the oldest is long finished
        _drain(s.pending[:4], run.out)
        del s.pending[:4]
    tokens = int(n_valid.sum())
    st = PROCESS.stats
    st["chunks"] += 1
    st["slot_steps"] += B * K
    st["tokens"] += tokens
    s.inflight.append((outgoing, tokens))
    while len(s.inflight) > 2:  # keep 2 chunks queued: device busy, progress honest
        _retire(s.inflight.popleft(), run.on_tokens)


def _inputs(run: _Run, *pairs: tuple[np.ndarray, NamedSharding]) -> tuple:
    """A call's host inputs (tokens, counts, masks): on one device the NumPy arrays themselves,
    which the compiled call takes in with its own transfer (cheaper than a ``device_put``
    apiece: the A/B in ``docs/speed.md``, "Small jobs: one compiled loop"); on several devices
    placed with their shardings."""
    if run.n_dev == 1:
        return tuple(a for a, _ in pairs)
    return tuple(jax.device_put(a, sh) for a, sh in pairs)


def _shaped(args: tuple, b: int) -> tuple:
    """``args`` of a chunk call with its row arrays (state, tokens, counts, resets) at ``b`` rows,
    as ``jax.ShapeDtypeStruct`` leaves (dtypes and shardings kept): what an executable's key sees.
    """
    prep, state, toks, n_valid, reset = args

    def rows(a):  # (B, ...) -> (b, ...); a host array (one device) has no sharding
        return jax.ShapeDtypeStruct(
            (b, *a.shape[1:]), a.dtype, sharding=getattr(a, "sharding", None)
        )

    state, n_valid, reset = jax.tree_util.tree_map(rows, (state, n_valid, reset))
    tok_sh = getattr(toks, "sharding", None)
    toks = jax.ShapeDtypeStruct((toks.shape[0], b), toks.dtype, sharding=tok_sh)  # (K, b)
    return (prep, state, toks, n_valid, reset)


def _harvest_host(state, done: list[tuple[int, int]], out: np.ndarray) -> None:
    """Copy the reps of the ``done`` (slot, sequence) pairs from ``state`` into ``out``."""
    reps = np.stack(jax.device_get(state[1]), axis=1)  # 3 x (B, H) -> (B, 3, H)
    for s, j in done:
        out[j] = reps[s]


def _compact(state, busy: np.ndarray, new_b: int, done, out: np.ndarray, row_sh):
    """``state`` with rows ``busy`` moved to the first slots of a ``new_b``-slot batch.

    The reps of the ``done`` slots (finished at this boundary) are copied into ``out`` first;
    the new batch's spare rows are zeros. A host round trip: it runs a few times per call.
    """
    host = jax.device_get(state)
    _harvest_host(host, done, out)
    pad = new_b - len(busy)

    def take(a):  # (old B, H) -> (new_b, H)
        return np.concatenate([a[busy], np.zeros((pad, a.shape[1]), a.dtype)])

    return jax.device_put(jax.tree_util.tree_map(take, host), row_sh)


def _retire(item: tuple[jax.Array, int], on_tokens) -> None:
    """Wait for an older chunk to finish, then report its tokens."""
    item[0].block_until_ready()
    if on_tokens is not None:
        on_tokens(item[1])


def _drain(pending, out: np.ndarray) -> None:
    for arr, done in pending:
        host = np.asarray(arr)  # (B, 3, H)
        for s, j in done:
            out[j] = host[s]
