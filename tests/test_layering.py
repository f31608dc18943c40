"""Dependencies in ``palsy_core`` run one way, read from the source (ast), never by importing it.

The folder tree is the architecture. Layers, lowest first: the shared base (``settings``,
``registry``, ``metrics``, ``native_logs``, the ``io`` package and the batch ``engine``), ``face``
and ``modalities``, ``extraction``, ``model``, ``inference``, ``evaluation``, ``training`` and
the interface (the package's front door ``__init__``, ``cli``, ``__main__``). A module may import
its own layer and those below; an arrow that runs back up (inference importing training, say)
fails here. The dashboard (``ui/``, ``views/``, ``app.py``) calls the core and never the training
layer, and the core never imports Streamlit.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "palsy_core"

# Layer of each top-level module or package of palsy_core.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("base", frozenset({"settings", "registry", "metrics", "native_logs", "io", "engine"})),
    ("face", frozenset({"face", "modalities"})),
    ("extraction", frozenset({"extraction"})),
    ("model", frozenset({"model"})),
    ("inference", frozenset({"inference"})),
    ("evaluation", frozenset({"evaluation"})),
    ("training", frozenset({"training"})),
    ("interface", frozenset({"cli", "__main__", "__init__"})),
)
LEVEL = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}
TRAINING = "training"


def _unit(path: Path) -> str:
    """The top-level module or package a source file belongs to."""
    rel = path.relative_to(CORE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _core_imports(path: Path) -> set[str]:
    """The palsy_core top-level units ``path`` imports (absolute imports, at any depth)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the core imports absolutely)"
            parts = (node.module or "").split(".")
            if parts[0] == "palsy_core":
                out |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names
                                                          if a.name in LEVEL}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names
                    if a.name.startswith("palsy_core.")}
    return out


def _all_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _sources() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py"))


def test_every_core_module_has_a_layer():
    units = {_unit(p) for p in _sources()}
    assert units == set(LEVEL), (f"unplaced: {sorted(units - set(LEVEL))}, "
                                 f"gone: {sorted(set(LEVEL) - units)}")


def test_imports_never_run_back_up():
    upward = []
    for path in _sources():
        here = _unit(path)
        for dep in _core_imports(path):
            assert dep in LEVEL, f"{path} imports unknown palsy_core.{dep}"
            if LEVEL[dep] > LEVEL[here]:
                upward.append(f"{path.relative_to(CORE)} ({LAYERS[LEVEL[here]][0]}) -> {dep} "
                              f"({LAYERS[LEVEL[dep]][0]})")
    assert not upward, "imports that run back up: " + "; ".join(upward)


def test_the_core_never_imports_streamlit_and_the_dashboard_never_trains():
    for path in _sources():
        assert "streamlit" not in _all_imports(path), path
    dashboard = [ROOT / "app.py", *ROOT.glob("views/*.py"), *ROOT.glob("ui/*.py")]
    assert len(dashboard) > 5
    for path in dashboard:
        assert TRAINING not in _core_imports(path), path.name


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checks above are not vacuous: an inference module importing training is caught."""
    bad = tmp_path / "scoring.py"
    bad.write_text("from palsy_core.training.train import fit\n"
                   "from palsy_core import training\n")
    deps = _core_imports(bad)
    assert deps == {"training"} and LEVEL["training"] > LEVEL["inference"]
