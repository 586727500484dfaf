"""One installed namespace and its import layers, checked on the source (``ast``), not by habit.

Each layer has a folder of its own: the design card's folders and ``embedding/``, ``porting/``,
``cli/`` sit at the repository root, the bottom modules in ``src/unirep_port/``, and all are
installed as ``unirep_port`` and its subpackages (``pyproject.toml``'s package-dir). Running from a
checkout, the folders' own top-level names (``import jax_port``) would still resolve from the
current directory and load a second copy of every module; an installed wheel has no such names.
So no file may use them, and the packages that pyproject ships must be exactly the folders that
hold code.

Layers, bottom to top (an arrow reads "may import"):
``unirep_port`` bottom modules (alphabet, sizes, fasta, shards, ...) <- ``weights`` <-
``reference_tf`` / ``jax_port`` (never each other's framework) <- ``embedding`` / ``parity`` /
``porting`` <- ``benchmarks`` <- ``cli``, which nothing imports. ``porting`` (the automatic
TF -> JAX conversion and the generic judge; it needs both frameworks) sits beside ``parity``:
``parity`` may import ``porting`` (the suite uses the kit: its drift statistics live in
``porting.drift``), and ``porting`` imports nothing of ``parity``: the kit stands alone.

Inside a layer, no modules import each other in a circle either, function-level (lazy) imports
included: a lazy import is still an arrow, and each pair of modules gets one direction.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OLD_NAMES = {
    "jax_port",
    "weights",
    "reference_tf",
    "parity_tests",
    "benchmarks",
    "embedding",
    "porting",
    "cli",
}
SKIP_DIRS = {".tox", ".git", "build", ".venv", "__pycache__", ".hypothesis"}


def _py_files() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if not SKIP_DIRS.intersection(p.relative_to(ROOT).parts)]


def _package_dirs() -> dict[str, Path]:
    """Installed package name -> folder, from pyproject.toml (longest mapped prefix wins)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = cfg.get("package-dir", {})
    out = {}
    for name in cfg["packages"]:
        prefix = max(
            (m for m in mapped if name == m or name.startswith(m + ".")), key=len, default=""
        )
        rest = name[len(prefix) :].lstrip(".").split(".") if prefix else name.split(".")
        base = ROOT / mapped[prefix] if prefix else ROOT
        out[name] = base.joinpath(*[r for r in rest if r])
    return out


def _module_name(path: Path, dirs: dict[str, Path]) -> str | None:
    """Installed dotted name of a source file, or None if it is not shipped (tests, scripts)."""
    best = None
    for name, d in dirs.items():
        if path.parent == d:
            best = name
    if best is None:
        return None
    return best if path.stem == "__init__" else f"{best}.{path.stem}"


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (``from a import b`` counts ``a`` and ``a.b``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_no_file_imports_the_old_top_level_names():
    bad = [
        f"{p.relative_to(ROOT)}: {m}"
        for p in _py_files()
        for m in sorted(_imports(p))
        if m.split(".")[0] in OLD_NAMES
    ]
    assert not bad, "use unirep_port.<name>:\n" + "\n".join(bad)


_IMPORTERS = {"importorskip", "import_module", "__import__"}


def _string_imports(path: Path) -> set[str]:
    """Module names imported *inside strings*: the first argument of ``importorskip(...)``,
    ``import_module(...)`` or ``__import__(...)``, and every import of a string constant that
    parses as Python (a ``python -c`` script, a subprocess's source)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and node.args:
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            arg = node.args[0]
            if fname in _IMPORTERS and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.add(arg.value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if "import" not in text:
                continue
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError):
                continue  # prose, not a script
            for sub in ast.walk(tree):
                if isinstance(sub, ast.Import):
                    out.update(a.name for a in sub.names)
                elif isinstance(sub, ast.ImportFrom) and sub.level == 0 and sub.module:
                    out.add(sub.module)
    return out


def _old_names_in_strings(paths) -> list[str]:
    return [
        f"{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}: {m}"
        for p in paths
        for m in sorted(_string_imports(p))
        if m.split(".")[0] in OLD_NAMES
    ]


def test_no_old_names_in_importorskip_or_script_strings():
    """``pytest.importorskip("reference_tf")`` or ``python -c "import weights"`` would load the
    checkout's folders as a second copy of the package (and skip, not fail, once installed)."""
    bad = _old_names_in_strings(_py_files())
    assert not bad, "use unirep_port.<name> in strings too:\n" + "\n".join(bad)


def test_the_string_check_can_fail(tmp_path):
    """Negative control: both kinds of string import of an old name are reported."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import pytest, subprocess, sys\n"
        "ref = pytest.importorskip('reference_tf')\n"
        "SCRIPT = 'import jax_port, weights\\nprint(1)\\n'\n"
        "subprocess.run([sys.executable, '-c', 'from benchmarks.harness import x'])\n"
        "ok = pytest.importorskip('unirep_port.reference_tf')\n"
        "PROSE = 'use import jax_port only in prose, as here'\n"
    )
    found = {line.split(": ")[1] for line in _old_names_in_strings([probe])}
    assert found == {"reference_tf", "jax_port", "weights", "benchmarks.harness"}


def test_no_old_module_paths_in_commands_or_strings():
    """An old name after ``python -m`` or in ``import_module``/``setattr`` breaks once installed."""
    names = "|".join(sorted(OLD_NAMES))
    pat = re.compile(rf"(-m |import_module\(\s*[\"']|setattr\(\s*[\"'])({names})\.")
    texts = [*_py_files(), *ROOT.glob("*.md"), ROOT / "tox.ini", ROOT / ".ci" / "run"]
    texts += [p for p in ROOT.glob("*/README.md")]
    bad = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in texts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pat.search(line)
    ]
    assert not bad, "\n".join(bad)


def test_pyproject_ships_exactly_the_code_folders():
    dirs = _package_dirs()
    shipped_code = {name for name, d in dirs.items() if (d / "__init__.py").is_file()}
    on_disk = set()
    for name, d in dirs.items():
        for init in d.rglob("__init__.py"):
            rel = init.parent.relative_to(d)
            if SKIP_DIRS.intersection(rel.parts):
                continue
            on_disk.add(".".join([name, *rel.parts]))
    assert on_disk - shipped_code == set(), "packages missing from pyproject.toml"
    for name, d in dirs.items():
        assert d.is_dir(), f"{name}: {d} does not exist"
    assert not (ROOT / "parity_tests" / "tests" / "__init__.py").exists(), "tests are not shipped"


# (importer prefix, forbidden import prefixes)
RULES = [
    (
        "unirep_port.<bottom>",
        (
            "unirep_port.weights",
            "unirep_port.reference_tf",
            "unirep_port.jax_port",
            "unirep_port.parity",
            "unirep_port.benchmarks",
            "unirep_port.embedding",
            "unirep_port.cli",
            "jax",
            "tensorflow",
        ),
    ),
    (
        "unirep_port.weights",
        (
            "unirep_port.reference_tf",
            "unirep_port.jax_port",
            "unirep_port.parity",
            "unirep_port.benchmarks",
            "unirep_port.embedding",
            "unirep_port.cli",
        ),
    ),
    (
        "unirep_port.jax_port",
        (
            "tensorflow",
            "unirep_port.reference_tf",
            "unirep_port.parity",
            "unirep_port.benchmarks",
            "unirep_port.embedding",
            "unirep_port.cli",
        ),
    ),
    (
        "unirep_port.reference_tf",
        (
            "jax",
            "unirep_port.jax_port",
            "unirep_port.parity",
            "unirep_port.benchmarks",
            "unirep_port.embedding",
            "unirep_port.cli",
        ),
    ),
    ("unirep_port.embedding", ("unirep_port.parity", "unirep_port.benchmarks", "unirep_port.cli")),
    ("unirep_port.parity", ("unirep_port.benchmarks", "unirep_port.cli")),
    ("unirep_port.porting", ("unirep_port.embedding", "unirep_port.benchmarks", "unirep_port.cli")),
    ("unirep_port.benchmarks", ("unirep_port.cli",)),
]
SUBPACKAGES = (
    "unirep_port.weights",
    "unirep_port.reference_tf",
    "unirep_port.jax_port",
    "unirep_port.parity",
    "unirep_port.porting",
    "unirep_port.benchmarks",
    "unirep_port.embedding",
    "unirep_port.cli",
    "unirep_port.data",
)
# What of the parity layer porting may use: nothing (the statistics are the kit's own).
PORTING_MAY_IMPORT_FROM_PARITY: tuple[str, ...] = ()


def _layer(mod: str) -> str:
    for sub in SUBPACKAGES:
        if mod == sub or mod.startswith(sub + "."):
            return sub
    return "unirep_port.<bottom>"


def _violations() -> list[str]:
    dirs = _package_dirs()
    forbidden = dict(RULES)
    bad = []
    for p in _py_files():
        mod = _module_name(p, dirs)
        if mod is None:
            continue
        for imp in sorted(_imports(p)):
            for f in forbidden.get(_layer(mod), ()):
                if imp == f or imp.startswith(f + "."):
                    bad.append(f"{mod} imports {imp}")
    return bad


def test_import_layers():
    assert not _violations(), "\n".join(_violations())


def _porting_parity_imports() -> list[str]:
    """``porting`` modules importing anything of ``parity``."""
    dirs = _package_dirs()
    bad = []
    for p in _py_files():
        mod = _module_name(p, dirs)
        if mod is None or _layer(mod) != "unirep_port.porting":
            continue
        for imp in sorted(_imports(p)):
            in_parity = imp == "unirep_port.parity" or imp.startswith("unirep_port.parity.")
            if in_parity and imp not in PORTING_MAY_IMPORT_FROM_PARITY:
                bad.append(f"{mod} imports {imp}")
    return bad


def test_porting_imports_nothing_of_parity():
    assert not _porting_parity_imports(), "\n".join(_porting_parity_imports())


def test_the_porting_check_can_fail():
    probe = ROOT / "porting" / "_layer_probe.py"
    probe.write_text(
        "from unirep_port.parity import oracle\nfrom unirep_port.parity import drift\n"
    )
    try:
        found = _porting_parity_imports()
        assert "unirep_port.porting._layer_probe imports unirep_port.parity.oracle" in found
        assert "unirep_port.porting._layer_probe imports unirep_port.parity.drift" in found
    finally:
        probe.unlink()


def test_nothing_in_the_package_imports_the_cli():
    dirs = _package_dirs()
    bad = [
        str(p.relative_to(ROOT))
        for p in _py_files()
        if _module_name(p, dirs) is not None
        and not p.is_relative_to(ROOT / "cli")
        and any(m == "unirep_port.cli" or m.startswith("unirep_port.cli.") for m in _imports(p))
    ]
    assert not bad, bad


def test_the_layer_check_can_fail():
    """A bottom module importing jax_port is reported (the check is not vacuous)."""
    probe = ROOT / "src" / "unirep_port" / "_layer_probe.py"
    probe.write_text("from unirep_port import jax_port\n")
    try:
        assert "unirep_port._layer_probe imports unirep_port.jax_port" in _violations()
    finally:
        probe.unlink()


def _folder(path: Path) -> str:
    """The repository folder a file lives in: its first path part (``src/<name>`` under src/)."""
    parts = path.relative_to(ROOT).parts
    return "/".join(parts[:2]) if parts[0] == "src" else parts[0]


def _shared_folders(mods: dict[str, Path]) -> list[str]:
    """Folders that hold modules of more than one layer, and layers spread over several folders:
    a path must name its layer (issue 29: ``unirep_port/`` held the bottom, the middle and the
    top)."""
    layers: dict[str, set[str]] = {}
    folders: dict[str, set[str]] = {}
    for mod, path in mods.items():
        layers.setdefault(_folder(path), set()).add(_layer(mod))
        folders.setdefault(_layer(mod), set()).add(_folder(path))
    bad = [f"{f}/ holds {', '.join(sorted(ls))}" for f, ls in sorted(layers.items()) if len(ls) > 1]
    bad += [
        f"{la} is in {', '.join(sorted(fs))}" for la, fs in sorted(folders.items()) if len(fs) > 1
    ]
    return bad


def test_each_layer_has_a_folder_of_its_own():
    mods = _module_files(_package_dirs(), _py_files())
    assert not _shared_folders(mods), "\n".join(_shared_folders(mods))
    assert not (ROOT / "unirep_port").exists(), "a unirep_port/ folder at the root shadows installs"


def test_the_folder_check_can_fail():
    """Negative control: the layout issue 29 found (cli and porting inside the bottom's folder)."""
    old = {
        "unirep_port.alphabet": ROOT / "unirep_port" / "alphabet.py",
        "unirep_port.cli": ROOT / "unirep_port" / "cli" / "__init__.py",
        "unirep_port.porting.drift": ROOT / "unirep_port" / "porting" / "drift.py",
        "unirep_port.jax_port": ROOT / "jax_port" / "__init__.py",
    }
    assert _shared_folders(old) == [
        "unirep_port/ holds unirep_port.<bottom>, unirep_port.cli, unirep_port.porting"
    ]


def test_cli_raises_a_real_import_error_and_names_a_missing_extra(tmp_path, monkeypatch, capsys):
    """Only a missing optional dependency makes a subcommand "unavailable"; a bug is raised."""
    import argparse

    from unirep_port import cli

    (tmp_path / "room_with_bug.py").write_text("import unirep_port.no_such_module\n")
    (tmp_path / "room_needs_ray.py").write_text("import ray\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the distributed extra were absent
    sub = argparse.ArgumentParser().add_subparsers()
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        cli._register("room_with_bug", sub, "bug")
    cli._register("room_needs_ray", sub, "scale")
    assert sub.choices["scale"].get_default("func")(None) == 2
    assert "pip install 'unirep-port[distributed]'" in capsys.readouterr().err


def _module_files(dirs: dict[str, Path], files) -> dict[str, Path]:
    """Installed dotted name -> source file of every shipped module among ``files``."""
    out = {}
    for p in files:
        mod = _module_name(p, dirs)
        if mod is not None:
            out[mod] = p
    return out


def _arrows(mod: str, path: Path, modules: set[str]) -> set[str]:
    """The project modules ``mod`` imports anywhere in its file (module level, in functions,
    relative imports, ``import_module("...")``), each resolved to the most specific module:
    ``from a import b`` is an arrow to ``a.b`` when that is a module, else to ``a``."""
    package = mod if path.stem == "__init__" else mod.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                full = f"{base}.{a.name}"
                names.add(full if full in modules else base)
        elif isinstance(node, ast.Call) and node.args:
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            arg = node.args[0]
            if fname == "import_module" and isinstance(arg, ast.Constant):
                names.add(str(arg.value))
    out = set()
    for name in names:
        while name and name not in modules:  # ``import a.b.func``-like names: the module
            name = name.rpartition(".")[0]
        if name and name != mod:
            out.add(name)
    return out


def _cycles(files: dict[str, Path]) -> list[str]:
    """Each import cycle among ``files`` (name -> path): the strongly connected components of
    the import graph (Tarjan), each as one circle through it and its members,
    ``"a -> b -> a (of a, b, c)"``."""
    modules = set(files)
    graph = {m: sorted(_arrows(m, p, modules)) for m, p in sorted(files.items())}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    circles = []
    for comp in comps:  # a path around the component: follow arrows inside it back to the start
        members, start = set(comp), comp[0]
        path, seen = [start], {start}
        while start not in graph[path[-1]] or len(path) == 1:
            fresh = [w for w in graph[path[-1]] if w in members and w not in seen]
            if not fresh:  # a dead end inside the component: name the component alone
                path = []
                break
            path.append(fresh[0])
            seen.add(fresh[0])
        circle = " -> ".join([*path, start]) if path else "a circle"
        circles.append(f"{circle} (of {', '.join(comp)})")
    return sorted(circles)


def test_no_import_cycles():
    """No shipped modules import each other in a circle, lazy (function-level) imports
    included (issue 29 found four: alphabet <-> fasta, ray_engine <-> reps_sharded,
    harness <-> roofline, oracle <-> oracle_jax <-> realpanel)."""
    found = _cycles(_module_files(_package_dirs(), _py_files()))
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_cycle_check_can_fail(tmp_path):
    """Negative control: a synthetic package whose modules import each other only inside
    functions (and one relative import) is reported; the same package without the back arrow
    is not."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from pkg.high import g\n    return g\n")
    (pkg / "high.py").write_text("from . import mid\n\ndef g():\n    return mid\n")
    (pkg / "mid.py").write_text("def h():\n    import pkg.low\n    return pkg.low\n")
    files = {f"pkg.{p.stem}": p for p in pkg.glob("*.py") if p.stem != "__init__"}
    files["pkg"] = pkg / "__init__.py"
    assert _cycles(files) == [
        "pkg.high -> pkg.mid -> pkg.low -> pkg.high (of pkg.high, pkg.low, pkg.mid)"
    ]
    (pkg / "low.py").write_text("def f():\n    return 1\n")
    assert _cycles(files) == []


# Benchmark results: one current file per benchmark, named by what it measures (issue 29 found
# reps-e2e-issue18-final-3.json, -s25-run2.json, refactor-ab-issue13.json side by side, and no
# way to tell which was current). A run that was replaced moves to history/ under its old name.
RESULTS = ROOT / "benchmarks" / "results"
# Names that say which work or which attempt made a file, not what it measures.
WORK_NAMED = re.compile(r"issue\d|-run\d|-final|-quiet|-s\d+$|-ab$|-ab-|-v\d+$|-old|-new")
RESULTS_REF = re.compile(r"benchmarks/results/[\w./{},*-]*[\w/}*]")


def _work_named(names) -> list[str]:
    return sorted(n for n in names if WORK_NAMED.search(Path(n).stem))


def test_current_results_are_named_by_what_they_measure():
    current = [p.name for p in RESULTS.iterdir() if p.is_file()]
    assert not _work_named(current), f"move superseded runs to {RESULTS / 'history'}"


def test_the_results_name_check_can_fail():
    """Negative control: the names issue 29 quoted are caught, today's current names are not."""
    quoted = ["reps-e2e-issue18-final-3.json", "reps-e2e-issue18-s25-run2.json"]
    quoted += ["refactor-ab-issue13.json", "fastmode-cpu-run1.json", "engine-ab-issue12.json"]
    ok = ["reps-e2e.json", "amd-epyc-2c-cpu.json", "paper-replication-1900.json"]
    assert _work_named(quoted + ok) == sorted(quoted)


def test_every_superseded_run_says_what_replaced_it():
    history = RESULTS / "history"
    readme = (history / "README.md").read_text()
    missing = [
        p.name
        for p in history.iterdir()
        if p.name != "README.md" and p.name not in readme and p.stem.split("-")[-1] not in readme
    ]
    assert not missing, f"not in {history / 'README.md'}: {missing}"


def _expand(ref: str) -> list[Path]:
    """Files a cited path names: ``{a,b}`` alternatives and ``*`` globs expanded."""
    m = re.search(r"\{([^}]*)\}", ref)
    if m:
        return [
            p
            for alt in m.group(1).split(",")
            for p in _expand(ref[: m.start()] + alt + ref[m.end() :])
        ]
    return sorted(ROOT.glob(ref)) if "*" in ref else [ROOT / ref]


def test_docs_cite_results_files_that_exist():
    """Every ``benchmarks/results/...`` path in the README and docs names a file that is there
    (a run moved to history/ takes its citations along)."""
    texts = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("*/README.md")]
    bad = [
        f"{p.relative_to(ROOT)}:{i}: {ref}"
        for p in texts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        for ref in RESULTS_REF.findall(line)
        if not (paths := _expand(ref)) or not all(q.exists() for q in paths)
    ]
    assert not bad, "\n".join(bad)


# The picture of the layers in docs/layout.md, checked against the imports themselves.
LAYOUT_DOC = ROOT / "docs" / "layout.md"


def _picture_rows(text: str) -> list[list[str]]:
    """The rows of the layer picture (the ``text`` block under "## The layers"), top first: the
    installed names of each row's ``[layer]`` marks (``[bottom]`` is the bottom modules)."""
    block = re.search(r"## The layers\n.*?```text\n(.*?)```", text, re.S)
    assert block, f"{LAYOUT_DOC}: no layer picture under '## The layers'"
    rows = [re.findall(r"\[(\w+)\]", line) for line in block.group(1).splitlines()]
    return [
        ["unirep_port.<bottom>" if n == "bottom" else f"unirep_port.{n}" for n in names]
        for names in rows
        if names
    ]


def _picture_violations(rows: list[list[str]]) -> list[str]:
    """Imports that go up the picture (function-level ones included), and layers with code that
    the picture leaves out."""
    row_of = {name: i for i, names in enumerate(rows) for name in names}  # 0: the top row
    mods = _module_files(_package_dirs(), _py_files())
    bad = [f"{layer}: not in the picture" for layer in {_layer(m) for m in mods} - set(row_of)]
    for mod, path in sorted(mods.items()):
        for imp in sorted(_arrows(mod, path, set(mods))):
            if row_of.get(_layer(imp), 0) < row_of.get(_layer(mod), 0):
                bad.append(f"{mod} imports {imp}, a row above it")
    return bad


def test_the_layer_picture_matches_the_imports():
    rows = _picture_rows(LAYOUT_DOC.read_text())
    names = [n for r in rows for n in r]
    assert len(names) == len(set(names)), f"a layer twice in the picture: {names}"
    assert not _picture_violations(rows), "\n".join(_picture_violations(rows))


def test_the_picture_check_can_fail():
    """Negative control: the same picture with jax_port drawn above benchmarks is refuted by
    benchmarks' imports of the port; a picture without cli misses a layer."""
    rows = _picture_rows(LAYOUT_DOC.read_text())
    swapped = [["unirep_port.jax_port"] if r == ["unirep_port.benchmarks"] else r for r in rows]
    swapped = [["unirep_port.benchmarks"] if "unirep_port.jax_port" in r else r for r in swapped]
    assert any(
        v.startswith("unirep_port.benchmarks.") and "imports unirep_port.jax_port" in v
        for v in _picture_violations(swapped)
    )
    without_cli = [r for r in rows if r != ["unirep_port.cli"]]
    assert "unirep_port.cli: not in the picture" in _picture_violations(without_cli)
