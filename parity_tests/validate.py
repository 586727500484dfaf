"""``unirep-port weights validate``: the gate a converted weight file must pass before use.

The candidate (any supported format) runs in the JAX port; the original (default: the published
weights of the detected size, in the original TF1 ``.npy`` folder layout) runs in the TF
reference; both see the validation panel. Exit 0 only when every output is within tolerance.
The report names each diverging output with its worst sequence and position, and, as a
diagnosis, the parameters whose arrays differ between candidate and original.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unirep_port.parity.compare import ParityResult
from unirep_port.parity.panel import validation_panel


@dataclass
class Verdict:
    size: int
    result: ParityResult
    differing_keys: list[tuple[str, float]]  # (canonical key, max abs difference)
    reference_from: str = "computed"  # "cache": the original's outputs came from refcache

    @property
    def ok(self) -> bool:
        return self.result.ok

    def format(self) -> str:
        lines = [
            f"validation of a {self.size} model on {self.result.n_sequences} sequences "
            f"(reference outputs on the original: {self.reference_from}):"
        ]
        lines.append(f"{'output':<9} {'max abs':>10} {'max rel':>10} {'fails':>6}  tolerance")
        for s in self.result.stats:
            lines.append(
                f"{s.output:<9} {s.max_abs:>10.2e} {s.max_rel:>10.2e} {s.n_fail:>6}  {s.tolerance}"
            )
        if self.differing_keys:
            lines.append("parameters that differ from the original (max abs difference):")
            lines += [f"  {k}: {d:.3g}" for k, d in self.differing_keys]
        else:
            lines.append("all parameter arrays are bitwise equal to the original")
        skipped = getattr(self.result, "not_investigated", [])
        if skipped:
            lines.append(
                f"evidence gathered up to the first confirmed failure; {len(skipped)} more "
                f"sequence(s) over tolerance not investigated: {', '.join(skipped)}"
            )
        if self.ok:
            lines.append("PASS: the candidate computes what the original computes")
        else:
            lines.append("FAIL: " + "; ".join(self.result.failures()))
        return "\n".join(lines)


def diff_params(candidate: dict, original: dict) -> list[tuple[str, float]]:
    out = []
    for k in original:
        a, b = candidate.get(k), original[k]
        if a is None or a.shape != b.shape:
            out.append((k, float("inf")))
        elif not np.array_equal(a, b):
            out.append((k, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())))
    return out


def validate(
    candidate,
    against=None,
    *,
    size: int | None = None,
    fmt: str | None = None,
    allow_pickle: bool = False,
    panel=None,
    use_cache: bool = True,
) -> Verdict:
    """Validate ``candidate`` (a path or a canonical dict) against ``against`` (path/dict/None).

    The reference's outputs on the original are the same for every candidate: they come from a
    verified per-machine cache (``parity.refcache``) when present, and the TF graph is built only
    when they must be computed or when a failing sequence needs the teacher-forced evidence.
    ``use_cache=False`` recomputes them (and stores nothing).

    Raises ``weights.WeightsError`` when either file cannot be loaded or fails its key, shape,
    dtype or finiteness check (the message names the file and keys).
    """
    from unirep_port import weights
    from unirep_port.parity.engine import run_parity
    from unirep_port.sizes import detect_size

    if isinstance(candidate, dict):
        cand = candidate
        weights.check(cand, size=size).raise_if_bad()
    else:
        cand = weights.load(candidate, fmt, size=size, allow_pickle=allow_pickle)
    size = size or detect_size({k: v.shape for k, v in cand.items()})
    if against is None:
        against = weights.published_tf1_npy(size)
    orig = against if isinstance(against, dict) else weights.load(against, size=size)
    from unirep_port.parity import refcache
    from unirep_port.parity.engine import tf_outputs

    panel = panel or validation_panel()
    seqs = [s for _, s in panel]
    ref, source = refcache.reference_outputs(
        orig,
        size,
        seqs,
        lambda: tf_outputs(_reference_babbler(orig, size), seqs),
        use_cache=use_cache,
    )
    result, _, _ = run_parity(
        orig,
        cand,
        panel,
        size,
        babbler=lambda: _reference_babbler(orig, size),
        reference_outputs=ref,
        stop_at_confirmed_failure=True,
    )
    return Verdict(size, result, diff_params(cand, orig), reference_from=source)


_BABBLER: list = []  # [(size, digest of the original's arrays, Babbler)]: the last one built


def _reference_babbler(orig: dict, size: int):
    """The TF reference on ``orig``, reused while the same original is validated against.

    Building the 1900 graph takes seconds; a run that validates several candidates against the
    same original (the tests, a conversion sweep) builds it once. Keyed by the arrays' content.
    """
    from unirep_port import reference_tf
    from unirep_port.parity.oracle import params_digest

    key = (size, params_digest(orig))
    if _BABBLER and _BABBLER[0][:2] == key:
        return _BABBLER[0][2]
    while _BABBLER:
        _BABBLER.pop()[2].close()
    babbler = reference_tf.Babbler(orig, size=size)
    _BABBLER.append((*key, babbler))
    return babbler
