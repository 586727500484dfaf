"""The parity report: ``parity-report.json`` (machine-readable) and ``parity-report.md`` (human)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from unirep_port.atomic import atomic_file
from unirep_port.parity.compare import ParityResult


def _versions() -> dict:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    from unirep_port.tfstart import quiet_import

    for mod in ("numpy", "jax", "jaxlib", "tensorflow"):
        try:
            out[mod] = quiet_import(mod).__version__
        except Exception:  # a missing library is just absent from the report
            pass
    return out


class Report:
    """Collects sections from the parity run and writes them out at the end."""

    def __init__(self) -> None:
        self.parity: list[ParityResult] = []
        self.sections: dict[str, dict] = {}
        self.failed_tests: list[str] = []

    def add_failed_test(self, nodeid: str, when: str = "call") -> None:
        label = nodeid if when == "call" else f"{nodeid} (in {when})"
        if label not in self.failed_tests:
            self.failed_tests.append(label)

    def add_parity(self, result: ParityResult) -> None:
        self.parity = [r for r in self.parity if r.size != result.size] + [result]

    def add(self, name: str, data: dict) -> None:
        self.sections[name] = data

    @property
    def ok(self) -> bool:
        """The float32 verdict: every test, every parity result, every section but those that
        carry a verdict of their own (``"separate_verdict": True``, e.g. the fast mode's)."""
        return (
            not self.failed_tests
            and all(r.ok for r in self.parity)
            and all(
                s.get("ok", True) for s in self.sections.values() if not s.get("separate_verdict")
            )
        )

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "versions": _versions(),
            "parity": [r.to_dict() for r in sorted(self.parity, key=lambda r: -r.size)],
            "failed_tests": list(self.failed_tests),
            "error_vs_length": [row for r in self.parity for row in r.error_vs_length],
            **self.sections,
        }

    def markdown(self) -> str:
        lines = [
            "# UniRep port parity report",
            "",
            f"Verdict: **{'PASS' if self.ok else 'FAIL'}**",
            "",
        ]
        for name, data in self.sections.items():
            if data.get("separate_verdict"):
                lines += [
                    f"Separate verdict, {name}: **{'PASS' if data.get('ok') else 'FAIL'}**",
                    "",
                ]
        if self.failed_tests:
            lines += ["Failed tests (see the pytest output for each one's message):", ""]
            lines += [f"- `{t}`" for t in self.failed_tests] + [""]
        if self.parity:
            lines += [
                "| size | output | tolerance | max abs | median abs | max rel | fails "
                "| f32-conditioning | worst at | first failure |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in sorted(self.parity, key=lambda r: -r.size):
                for s in r.stats:
                    lines.append(
                        f"| {r.size} | {s.output} | {s.tolerance} | {s.max_abs:.2e} | "
                        f"{s.median_abs:.2e} | {s.max_rel:.2e} | {s.n_fail} | {s.n_excused} | "
                        f"{s.worst} | {s.first_fail or '-'} |"
                    )
            lines.append("")
            cond = [(r.size, k, v) for r in self.parity for k, v in r.conditioning.items()]
            if cond:
                lines += [
                    "Sequences over tolerance free-running, with the teacher-forced step check "
                    "(TF and the port each step from the float64 state; error over the bound "
                    "derived from 16 reordered float32 members, must be <= 1), the reference's, "
                    "the float32 ensemble's and the port's own drift from float64, and the "
                    "Student-t factor the attribution allows (see parity_tests/compare.py and "
                    "parity_tests/drift.py):",
                    "",
                    "| size | sequence | steps ok | max step h err | step err / bound "
                    "| max drift from f64: reference / members / port "
                    "| mean drift: port vs witnesses' RMS | factor "
                    "| ill-conditioned from |",
                    "|---|---|---|---|---|---|---|---|---|",
                ]
                for size, k, v in cond:
                    lines.append(
                        f"| {size} | {k} | {v['step_ok']} | {v['max_step_h']:.2e} | "
                        f"{v.get('step_bound_ratio', 0.0):.2f} | {v['max_ref_drift']:.2e} / "
                        f"{v['max_member_drift']:.2e} / {v['max_port_drift']:.2e} | "
                        f"{v['port_mean_drift']:.2e} vs {v['witness_mean_drift']:.2e} | "
                        f"{v.get('factor', 0.0):.2f} | {_ill(v['ill_from'])} |"
                    )
                lines.append("")
        for name, data in self.sections.items():
            lines.append(f"## {name}")
            lines.append("")
            summary = data.get("summary")
            if summary:
                lines += [summary, ""]
            rows = data.get("rows")
            if rows:
                keys = list(rows[0])
                lines.append("| " + " | ".join(keys) + " |")
                lines.append("|" + "---|" * len(keys))
                for row in rows:
                    lines.append("| " + " | ".join(_fmt(row.get(k)) for k in keys) + " |")
                lines.append("")
        return "\n".join(lines)

    def write(self, directory: str | os.PathLike | None = None) -> tuple[Path, Path]:
        """Write both files to ``directory`` (default: ``paths.results_dir()``)."""
        from unirep_port.parity.paths import results_dir

        directory = Path(directory) if directory is not None else results_dir()
        directory.mkdir(parents=True, exist_ok=True)
        paths = (directory / "parity-report.json", directory / "parity-report.md")
        texts = (json.dumps(self.to_dict(), indent=2, default=float), self.markdown())
        for path, text in zip(paths, texts):
            with atomic_file(path) as tmp:
                tmp.write_text(text)
        return paths


def _ill(ill_from) -> str:
    """``{'hs': 84, 'logits': None}`` -> ``hs 84, logits -``."""
    if not isinstance(ill_from, dict) or not ill_from:
        return "-"
    return ", ".join(f"{k} {'-' if v is None else v}" for k, v in ill_from.items())


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
