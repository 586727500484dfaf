"""Compare two implementations' outputs with stated tolerances, naming what diverged and where.

Tolerances (float32 on CPU) and why they are what they are:

* Hidden states ``h`` (per position, ``h_avg``, ``h_final``): absolute, ``1e-5`` for sequences of at
  most 500 residues and ``2e-5`` up to 2,000. ``h = o * tanh(c)`` lies in (-1, 1), so absolute error
  is the natural scale. Each step sums 1,900-term dot products whose rounding depends on the matmul
  kernel's blocking (Eigen in TF, XLA here): about ``sqrt(1900) * 2**-24 ~ 3e-6`` relative per dot
  product, which the recurrence carries forward; measured drift grows slowly with length, hence the
  doubled bound past 500.
* Cell state ``c_final``: relative to the sequence's largest ``|c|`` (over hidden units), ``1e-5``.
  ``c`` is unbounded (it can grow with length), so a fixed absolute bound would be too loose for
  short sequences and too tight for long ones.
* Logits: a triage value, absolute ``1e-4``, not a verdict: a sequence whose logits differ from
  the reference's by more anywhere gets the evidence of :func:`assess`, and each such place
  passes or fails on a bound derived at run time (:func:`assess`, ``logits``): the port's
  distance from the float64 logits against the witnesses' spread there, with a stated
  false-alarm rate. Logits are ``h @ W + b``, 1,900-term sums whose own rounding depends on the
  order a kernel adds them in (the 589-mer of ``data/regressions-logits.fasta``: its header
  gives what the port's few-row kernel and TF's did at one place), so no fixed number is right
  on every CPU and batch.

A real porting bug (wrong gate order, a missing start token, a transposed matrix) moves these
outputs by 1e-2 or more, three orders of magnitude above the bounds (see ``planted_bugs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

H_TOL_SHORT = 1e-5
H_TOL_LONG = 2e-5
LONG_FROM = 500  # residues
C_REL_TOL = 1e-5
LOGIT_TOL = 1e-4
OUTPUTS = ("hs", "h_avg", "h_final", "c_final", "logits")
ILL_FRACTION = 0.5  # see compare(): drift past tol/2 makes a place ill-conditioned
ENSEMBLE_MEMBERS = 8  # independent float32 implementations: witnesses of float32 drift


def h_tolerance(n_residues: int) -> float:
    """Absolute tolerance for hidden states of a sequence of ``n_residues`` residues."""
    return H_TOL_SHORT if n_residues <= LONG_FROM else H_TOL_LONG


@dataclass
class Outputs:
    """Everything one implementation produced for a panel of ``n`` sequences.

    ``hs[i]`` is (L_i + 1, H): the output at every input position, the start token's included;
    ``logits[i]`` is (L_i + 1, 25); the reps are (n, H).
    """

    hs: list[np.ndarray]
    logits: list[np.ndarray]
    h_avg: np.ndarray
    h_final: np.ndarray
    c_final: np.ndarray


@dataclass
class OutputStats:
    output: str
    tolerance: str
    max_abs: float
    median_abs: float
    max_rel: float
    median_rel: float
    n_fail: int
    worst: str  # "<seq id> position <t>" of the largest error
    first_fail: str | None  # earliest position (over the panel) where the error passes tolerance
    n_excused: int = 0  # over tolerance but attributed to float32 conditioning (see compare)


@dataclass
class ParityResult:
    size: int
    impl_a: str
    impl_b: str
    n_sequences: int
    stats: list[OutputStats]
    error_vs_length: list[dict] = field(default_factory=list)
    conditioning: dict = field(default_factory=dict)  # seq id -> teacher-forced evidence

    @property
    def ok(self) -> bool:
        return all(s.n_fail == 0 for s in self.stats)

    def failures(self) -> list[str]:
        return [
            f"{self.size}: {s.output} exceeds {s.tolerance} in {s.n_fail} place(s); worst "
            f"{s.max_abs:.3g} abs at {s.worst}; first at {s.first_fail}"
            for s in self.stats
            if s.n_fail
        ]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _rel(diff: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return diff / np.maximum(scale, np.finfo(np.float32).tiny)


def compare(
    a: Outputs,
    b: Outputs,
    ids: Sequence[str],
    size: int,
    impl_a: str = "tf",
    impl_b: str = "jax",
    conditioning: dict[int, Conditioning] | None = None,
) -> ParityResult:
    """Compare outputs ``b`` against reference ``a`` for the sequences named ``ids``.

    Shape mismatches are failures (never broadcast). Returns per-output statistics, the first
    failing position, and per-sequence error against length. (Over 80 lines for its docstring:
    the four conditions of attribution are stated here, beside the code that applies them.)

    ``conditioning`` maps a sequence index to the evidence ``engine.conditioning_of`` gathered for
    it (decided by :func:`assess`). Where ``a`` and ``b`` differ by more than the tolerance at a
    place, the difference is attributed to float32 conditioning rather than to the port only when
    all four hold:

    1. the teacher-forced step check passed at every position of that sequence (each step of the
       port computes what the reference's step computes, from the same state);
    2. the place is ill-conditioned, shown without the port: some float32 implementation
       independent of it -- the reference, or one of ``ENSEMBLE_MEMBERS`` members of
       ``oracle.float32_ensemble`` -- has drifted from the float64 oracle by more than half that
       output's tolerance (at or before that position for ``hs``; on that rep for the reps);
       from there two faithful float32 implementations can differ by the whole tolerance. Not
       for ``logits``: their place passes on 1, 3 and 4 alone, 3 with the bound derived for
       them (:func:`assess`), so no fixed number decides a logit's verdict;
    3. at that place the port itself is no farther from float64 than a faithful float32
       implementation could be: at most ``drift.tail_factor(n, ALPHA_SEQUENCE)`` times the
       witnesses' root-mean-square drift (``n`` witnesses; for ``hs`` the largest such scale at
       or before the place; for a rep: on that rep); for ``logits`` the factor is Bonferroni'd
       over the sequence's positions (:func:`logit_factor`) and the members' logit layers each
       add in an order of their own (:func:`witness_logits`), so this is their whole verdict;
    4. over the whole sequence the port is as close to the exact result as a faithful float32
       implementation: its mean per-position distance from float64 (``hs``) is within the same
       factor of the witnesses' root-mean-square mean drift. (3 uses the running maximum because
       the single positions where rounding is amplified most are heavy-tailed for every
       implementation alike.)

    The factor is derived, not tuned (``parity_tests/drift.py``): if the port is one more faithful
    float32 implementation, its drift over the witnesses' RMS follows Student's t with ``n``
    degrees of freedom, and it passes 3 and 4 except with probability about ``ALPHA_SEQUENCE``.
    Being a bit less accurate everywhere cannot be told on one sequence; that is judged over a
    panel of real proteins by ``drift.sign_test`` (``parity_tests/realpanel.py``).

    Such places are counted as ``n_excused``, never silently; everything else over tolerance is
    a failure. A bug cannot excuse itself: 2 is measured without the port, 1 checks every step
    against the reference, and 3 and 4 hold the port to the exact result.
    """
    n = len(ids)
    conditioning = conditioning or {}
    lengths = np.array([x.shape[0] - 1 for x in a.hs])  # residues (start token excluded)
    stats: list[OutputStats] = []
    per_seq: list[dict] = [
        {"size": size, "id": str(ids[i]), "length": int(lengths[i])} for i in range(n)
    ]
    for name in OUTPUTS:
        abs_all, rel_all = [], []
        n_fail = n_excused = 0
        worst, worst_val, first, first_key = "", -1.0, None, None
        for i in range(n):
            x, y = _get(a, name, i), _get(b, name, i)
            if x.shape != y.shape:
                n_fail += 1
                first = first or f"{ids[i]} (shape {y.shape} vs reference {x.shape})"
                continue
            err, d = _err(name, x, y)
            abs_all.append(d.ravel())
            rel_all.append(_rel(d, np.abs(x)).ravel())
            tol = tolerance(name, int(lengths[i]))
            over = err > tol
            cond = conditioning.get(i)
            if over.any() and cond is not None and cond.step_ok and cond.accurate:
                place_ok = np.asarray(cond.place_ok[name], bool)
                if name == "logits":  # the derived bound alone decides (see assess)
                    excused = over & place_ok
                elif name == "hs":
                    start = cond.ill_from.get(name)
                    if start is not None:
                        excused = over & place_ok & (np.arange(len(over)) >= start)
                    else:
                        excused = np.zeros_like(over)
                else:  # a rep: the witnesses' drift on that very rep decides
                    excused = over & place_ok & bool(cond.ill_reps.get(name, False))
                n_excused += int(excused.sum())
                over &= ~excused
            bad = np.nonzero(over)[0]
            n_fail += len(bad)
            where = "position " if name in ("hs", "logits") else ""
            if len(bad) and (first_key is None or bad[0] < first_key):
                first_key = int(bad[0])
                first = f"{ids[i]} {where}{first_key} (error {err[bad[0]]:.3g} > {tol:g})"
            t = int(err.argmax())
            if err[t] > worst_val:
                worst_val = float(err[t])
                worst = f"{ids[i]} position {t}" if where else f"{ids[i]}"
            per_seq[i][f"err_{name}"] = float(err.max())
        st = _stats(name, _tol_text(name), abs_all, rel_all, n_fail, worst, first)
        st.n_excused = n_excused
        stats.append(st)
    for row in per_seq:
        row["max_abs_h"] = row.get("err_hs")  # the error-vs-length figure's column
    return ParityResult(size, impl_a, impl_b, n, stats, per_seq)


def over_tolerance(result: ParityResult) -> list[int]:
    """Indices of sequences with any output over its tolerance (before oracle excuses)."""
    out = []
    for i, row in enumerate(result.error_vs_length):
        n_res = row["length"]
        for name in OUTPUTS:
            e = row.get(f"err_{name}")
            if e is not None and e > tolerance(name, n_res):
                out.append(i)
                break
    return out


@dataclass
class Conditioning:
    """Teacher-forced and float32-ensemble evidence for one sequence (made by :func:`assess`)."""

    step_ok: bool  # every position's one-step h and c within tolerance
    ill_from: dict  # hs/logits -> first position where a witness drifts > tol/2, or None
    # (for logits reported only: their places pass on the derived bound, see assess)
    ill_reps: dict  # rep -> whether a witness drifted > tol/2 from float64 on it
    place_ok: dict = field(default_factory=dict)  # output -> condition 3, per position or one
    accurate: bool = False  # condition 4
    port_mean_drift: float = 0.0  # mean over positions of the port's distance from float64 (hs)
    witness_mean_drift: float = 0.0  # the same, root mean square over the witnesses
    factor: float = 0.0  # drift.tail_factor for the witnesses (conditions 3 and 4)
    step_bound_ratio: float = 0.0  # largest teacher-forced step error over its derived bound
    max_step_h: float = 0.0
    max_step_c_rel: float = 0.0
    max_ref_drift: float = 0.0  # the reference's own largest distance from float64 (hs)
    max_member_drift: float = 0.0  # the ensemble members' largest distance from float64 (hs)
    max_port_drift: float = 0.0  # the port's largest distance from float64 (hs)
    members: int = 0
    logit_factor: float = 0.0  # assess's Student-t factor of the logits' bound (Bonferroni)
    logits_place: dict = field(default_factory=dict)  # who is off where the logits are tightest

    def summary(self) -> dict:
        """The evidence as plain values, for the report (places failing condition 3 counted)."""
        d = asdict(self)
        d["places_beyond_witnesses"] = {
            k: int(np.size(v) - np.count_nonzero(v)) for k, v in self.place_ok.items()
        }
        del d["place_ok"]
        return d


def assess(
    step_ok: bool,
    n_residues: int,
    ref_drift: dict,
    member_drift: dict,
    port_drift: dict,
    **scalars,
) -> Conditioning:
    """Decide the attribution conditions 2-4 of :func:`compare` from measured drifts.

    Each dict maps an output name to distances from the float64 oracle, measured as
    :func:`error_of` measures errors: ``ref_drift`` and ``port_drift`` (L+1,) for ``hs`` and
    ``logits``, one float for a rep; ``member_drift`` the same with a leading members axis.
    ``scalars`` are stored as they are (step-check maxima, ...).

    The logits' bound (condition 3 for ``logits``) is derived as the step check's is: with
    ``n`` witnesses (the reference and the members, whose logit layers should each add the
    1,900 products in an order of their own: :func:`witness_logits`), a faithful port's drift at
    a position over the witnesses' RMS drift follows Student's t with ``n`` degrees of freedom,
    so ``logit_factor(n, L+1)`` times the largest RMS at or before the position is exceeded
    somewhere in the sequence with probability at most ``ALPHA_SEQUENCE`` (Bonferroni over its
    ``L+1`` positions; each position's drift is the largest over its 25 logits, the same
    statistic for the port and every witness). No fixed tolerance enters it.
    """
    from unirep_port.parity.drift import ALPHA_SEQUENCE, rms, tail_factor

    ill_from, ill_reps, place_ok = {}, {}, {}
    n_witnesses = 1 + len(np.asarray(member_drift["hs"]))
    k = tail_factor(n_witnesses, ALPHA_SEQUENCE)
    k_logits = logit_factor(n_witnesses, len(np.asarray(port_drift["logits"])))
    logits_place: dict = {}
    for name in OUTPUTS:
        stack = np.concatenate([np.asarray(ref_drift[name])[None], np.asarray(member_drift[name])])
        witness = stack.max(axis=0)
        scale = rms(stack)  # (L+1,) or one float
        half = ILL_FRACTION * tolerance(name, n_residues)
        if name in ("hs", "logits"):
            ill = np.nonzero(witness > half)[0]
            ill_from[name] = int(ill[0]) if len(ill) else None  # reported; logits: not a rule
            running = np.maximum.accumulate(scale)
            if name == "logits":
                bound = k_logits * running
                place_ok[name] = port_drift[name] <= bound
                logits_place = _worst_place(port_drift[name], ref_drift[name], running, bound)
            else:
                place_ok[name] = port_drift[name] <= k * running
        else:
            ill_reps[name] = bool(witness > half)
            place_ok[name] = bool(port_drift[name] <= k * scale)
    ref_h, members_h, port_h = ref_drift["hs"], np.asarray(member_drift["hs"]), port_drift["hs"]
    witness_means = np.concatenate([[ref_h.mean()], members_h.mean(axis=1)])
    witness_mean = float(rms(witness_means))
    return Conditioning(
        step_ok=step_ok,
        ill_from=ill_from,
        ill_reps=ill_reps,
        place_ok=place_ok,
        accurate=bool(port_h.mean() <= k * witness_mean),
        port_mean_drift=float(port_h.mean()),
        witness_mean_drift=witness_mean,
        max_ref_drift=float(ref_h.max()),
        max_member_drift=float(members_h.max()),
        max_port_drift=float(port_h.max()),
        members=len(members_h),
        factor=k,
        logit_factor=k_logits,
        logits_place=logits_place,
        **scalars,
    )


def logit_factor(n_witnesses: int, positions: int) -> float:
    """The Student-t factor of the logits' bound: ``ALPHA_SEQUENCE`` per sequence, Bonferroni
    over its ``positions`` (see :func:`assess`)."""
    from unirep_port.parity.drift import ALPHA_SEQUENCE, tail_factor

    return tail_factor(n_witnesses, ALPHA_SEQUENCE / max(int(positions), 1))


def _worst_place(port, ref, scale, bound) -> dict:
    """At the position where the port comes closest to (or goes past) its logits' bound: who is
    off there -- the port's and the reference's drift from float64 in units of the witnesses'
    RMS drift -- and the bound."""
    port, ref = np.asarray(port, np.float64), np.asarray(ref, np.float64)
    t = int(np.argmax(port / np.maximum(bound, np.finfo(np.float64).tiny)))
    s = max(float(scale[t]), np.finfo(np.float64).tiny)
    return {
        "position": t,
        "port_drift": float(port[t]),
        "reference_drift": float(ref[t]),
        "witness_rms": float(scale[t]),
        "port_over_rms": float(port[t]) / s,
        "reference_over_rms": float(ref[t]) / s,
        "bound": float(bound[t]),
        "off": "port" if port[t] > ref[t] else "reference",
    }


def witness_logits(member_hs, dense_w, dense_b, seed: int = 0) -> np.ndarray:
    """Each witness's logits from its own ``h``, its logit layer adding the products one at a time
    in an order of its own: ``member_hs`` (K, L+1, H) -> (K, L+1, 25), float32.

    ``h @ W + b`` sums ``H`` products per logit; how far float32 lands from the exact sum depends
    on the order the kernel adds them in, and witnesses that all call one BLAS kernel share its
    order (blocked, among the more accurate), so their spread says nothing about a kernel that
    adds in another. Here member ``k`` shuffles the ``H`` terms (seeded) and adds them
    recursively, each product rounded to float32 and then each sum: recursive summation, whose
    error grows with the running partial sums, is the least accurate order kernels use (Higham,
    *Accuracy and Stability of Numerical Algorithms*, 2nd ed., sec. 4.2: blocked and pairwise
    sums bound the error by smaller partial sums), and a one-row dot adds that way. So a faithful
    kernel's rounding is at most one more draw of this spread (``tests/test_logit_bound.py``
    checks that the port's few-row logits stay within these witnesses' bound); the bias is
    added last. Why not one BLAS order: ``data/regressions-logits.fasta``'s header.
    """
    hs = np.asarray(member_hs, np.float32)  # (K, T, H)
    w, b = np.asarray(dense_w, np.float32), np.asarray(dense_b, np.float32)  # (H, O), (O,)
    K, T, H = hs.shape
    rng = np.random.default_rng(seed)
    orders = np.stack([rng.permutation(H) for _ in range(K)])  # (K, H)
    terms_h = np.ascontiguousarray(np.take_along_axis(hs, orders[:, None, :], 2).transpose(2, 0, 1))
    terms_w = np.ascontiguousarray(w[orders].transpose(1, 0, 2))  # (H, K, O)
    acc = np.zeros((K, T, w.shape[1]), np.float32)
    for j in range(H):  # (K, T, 1) * (K, 1, O) -> (K, T, O), rounded, then added and rounded
        acc += terms_h[j][:, :, None] * terms_w[j][:, None, :]
    return acc + b


def error_of(name: str, reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The per-place error :func:`compare` tests against the tolerance (see ``_err``)."""
    return _err(name, reference, other)[0]


def _get(o: Outputs, name: str, i: int) -> np.ndarray:
    v = getattr(o, name)
    return np.asarray(v[i] if name in ("hs", "logits") or not isinstance(v, np.ndarray) else v[i])


def _err(name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-place error used against the tolerance, and the elementwise absolute difference.

    Per position (max over units) for ``hs`` and ``logits``; one number for a rep row; for
    ``c_final`` relative to the row's largest ``|c|``.
    """
    d = np.abs(x.astype(np.float64) - y.astype(np.float64))
    if name in ("hs", "logits"):
        return d.max(axis=-1), d
    if name == "c_final":
        scale = max(float(np.abs(x).max()), float(np.finfo(np.float32).tiny))
        return np.array([d.max() / scale]), d
    return np.array([d.max()]), d


def tolerance(name: str, n_residues: int) -> float:
    """The triage bound of output ``name`` for an ``n_residues`` sequence (c_final: relative)."""
    if name == "logits":
        return LOGIT_TOL
    if name == "c_final":
        return C_REL_TOL
    return h_tolerance(n_residues)


def _tol_text(name: str) -> str:
    if name in ("hs", "h_avg", "h_final"):
        return f"abs {H_TOL_SHORT:g} (L<={LONG_FROM}) / {H_TOL_LONG:g} (L<=2000)"
    if name == "c_final":
        return f"rel-to-max|c| {C_REL_TOL:g}"
    return f"triage abs {LOGIT_TOL:g}; over it, the derived bound"


def _stats(name, tol, abs_parts, rel_parts, n_fail, worst, first) -> OutputStats:
    abs_v = np.concatenate(abs_parts) if abs_parts else np.array([np.inf])
    rel_v = np.concatenate(rel_parts) if rel_parts else np.array([np.inf])
    return OutputStats(
        output=name,
        tolerance=tol,
        max_abs=float(abs_v.max()),
        median_abs=float(np.median(abs_v)),
        max_rel=float(rel_v.max()),
        median_rel=float(np.median(rel_v)),
        n_fail=int(n_fail),
        worst=worst,
        first_fail=first,
    )


def assert_tree_close(name: str, got, want, atol: float, rtol: float = 0.0) -> None:
    """Assert two pytrees (dicts/lists/arrays) agree, naming the failing leaf and its position."""
    if isinstance(want, dict):
        assert set(got) == set(want), f"{name}: keys differ: {sorted(set(got) ^ set(want))}"
        for k in want:
            assert_tree_close(f"{name}[{k!r}]", got[k], want[k], atol, rtol)
        return
    if isinstance(want, list | tuple):
        assert len(got) == len(want), f"{name}: {len(got)} items vs {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_tree_close(f"{name}[{i}]", g, w, atol, rtol)
        return
    g, w = np.asarray(got), np.asarray(want)
    assert g.shape == w.shape, f"{name}: shape {g.shape} != expected {w.shape}"
    d = np.abs(g.astype(np.float64) - w.astype(np.float64))
    lim = atol + rtol * np.abs(w.astype(np.float64))
    if not (d <= lim).all():
        pos = np.unravel_index(int((d - lim).argmax()), d.shape)
        raise AssertionError(
            f"{name}: max error {d.max():.3g} (limit atol={atol:g}, rtol={rtol:g}); worst at index "
            f"{tuple(int(p) for p in pos)}: got {g[pos]!r}, expected {w[pos]!r}"
        )
