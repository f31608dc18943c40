"""Dependencies in ``palsy_core`` run one way, read from the source (ast), never by importing it.

Layers, lowest first: base utilities, face geometry and modalities, extraction, the model,
inference, evaluation, training, the command line. A module may import its own layer and those
below; an arrow that runs back up (inference importing training, say) fails here. The dashboard
(``ui/``, ``views/``, ``app.py``) calls the core and never the training layer, and the core never
imports Streamlit.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "palsy_core"

LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("base", frozenset({"settings", "registry", "topology", "media", "samples",
                        "metrics", "native_logs", "curves", "marks", "manifest", "bundle"})),
    ("face", frozenset({"landmarks", "alignment", "features", "line_segments", "synth",
                        "face_net", "blendshapes"})),
    ("extraction", frozenset({"pipeline", "extract"})),
    ("model", frozenset({"batches", "model", "fusion", "checkpoint", "novelty"})),
    ("inference", frozenset({"scoring", "live", "explain", "demo", "report", "screen"})),
    ("evaluation", frozenset({"evaluate", "model_card"})),
    ("training", frozenset({"dataset", "train", "crossval", "transfer"})),
    ("interface", frozenset({"cli", "__main__", "__init__"})),
)
LEVEL = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}
TRAINING = LAYERS[6][1]


def _core_imports(path: Path) -> set[str]:
    """The palsy_core modules ``path`` imports (relative or absolute, at any depth)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:  # from . import x (a module or a name)
                out |= {a.name if (CORE / f"{a.name}.py").is_file() else "__init__"
                        for a in node.names}
            elif node.level == 1:
                out.add(node.module.split(".")[0])
            elif node.module and node.module.split(".")[0] == "palsy_core":
                parts = node.module.split(".")
                out |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
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


def test_every_core_module_has_a_layer():
    modules = {p.stem for p in CORE.glob("*.py")}
    assert modules == set(LEVEL), (f"unplaced: {sorted(modules - set(LEVEL))}, "
                                   f"gone: {sorted(set(LEVEL) - modules)}")


def test_imports_never_run_back_up():
    upward = []
    for path in sorted(CORE.glob("*.py")):
        for dep in _core_imports(path):
            assert dep in LEVEL, f"{path.name} imports unknown palsy_core.{dep}"
            if LEVEL[dep] > LEVEL[path.stem]:
                upward.append(f"{path.stem} ({LAYERS[LEVEL[path.stem]][0]}) -> {dep} "
                              f"({LAYERS[LEVEL[dep]][0]})")
    assert not upward, "imports that run back up: " + "; ".join(upward)


def test_the_core_never_imports_streamlit_and_the_dashboard_never_trains():
    for path in CORE.glob("*.py"):
        assert "streamlit" not in _all_imports(path), path.name
    dashboard = [ROOT / "app.py", *ROOT.glob("views/*.py"), *ROOT.glob("ui/*.py")]
    assert len(dashboard) > 5
    for path in dashboard:
        assert not _core_imports(path) & TRAINING, (path.name, _core_imports(path) & TRAINING)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checks above are not vacuous: an inference module importing training is caught."""
    bad = tmp_path / "scoring.py"
    bad.write_text("from .train import fit\nfrom palsy_core import transfer\n")
    deps = _core_imports(bad)
    assert deps == {"train", "transfer"}
    assert all(LEVEL[d] > LEVEL["scoring"] for d in deps)
