"""A pytest helper: fail a test with the verdict's report, the way ``assert_allclose`` fails one.

```python
from unirep_port.porting.testing import assert_port

def test_my_port():
    assert_port(reference, my_port, inputs, time_axis=(1, None), lengths=lambda x, n: n)
```

On a FAIL the assertion message is the verdict's markdown report (per output, the worst place,
the bulk test, the first diverging tap). ``html=`` writes the verdict's page as well (both
outcomes), for a CI artifact.
"""

from __future__ import annotations

import os
from pathlib import Path

from unirep_port.porting.judge import judge
from unirep_port.porting.verdict import Verdict


def assert_port(
    reference, candidate, inputs, *, html: str | os.PathLike | None = None, **judge_kwargs
) -> Verdict:
    """Judge ``candidate`` against ``reference`` (:func:`~unirep_port.porting.judge`); raise
    ``AssertionError`` with the report unless it passes. Returns the verdict."""
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    verdict = judge(reference, candidate, inputs, **judge_kwargs)
    if html is not None:
        Path(html).write_text(verdict.to_html())
    if not verdict.ok:
        raise AssertionError("the port is not faithful to its reference:\n" + verdict.report())
    return verdict
