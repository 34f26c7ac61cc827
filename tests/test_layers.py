"""The folders tell the data flow, and no module imports a layer above its own (so there are no cycles).

Layers, lowest first: base helpers (io, params, paths) < ingest (topic -> conversion -> window) < model and
backbones (encoders, fusion, adapter, LLM) < inference (engine, worker, backends) < config (one
PerceptionConfig) < nodes (rclpy) and bags (rosbag2) < evaluation < app (command line) and training.
Imports inside functions count too: a lazy import of a higher layer is still a dependency on it.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS = {  # module prefix -> rank
    "emotion_ros.io": 0, "emotion_ros.params": 0, "emotion_ros.paths": 0,
    "emotion_ros.ingest": 1,
    "emotion_ros.model": 2, "emotion_ros.backbones": 2,
    "emotion_ros.inference": 3,
    "emotion_ros.config": 4,
    "emotion_ros.nodes": 5, "emotion_ros.bags": 5,
    "emotion_ros.evaluation": 6,
    "emotion_ros.app": 7, "emotion_ros_training": 7,
}
ALLOWED = {  # (importer prefix, imported prefix): why a lower layer may reach up
    ("emotion_ros.nodes", "emotion_ros.msg"): "generated messages",
}


def _rank(module: str):
    best = None
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, rank)
    return best


def _modules():
    for folder, name in ((ROOT / "emotion_ros", "emotion_ros"), (ROOT / "training", "emotion_ros_training")):
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [name, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_every_module_is_in_a_layer():
    unplaced = [m for m, _ in _modules() if _rank(m) is None and m not in ("emotion_ros", "emotion_ros.__main__")]
    assert not unplaced, f"modules outside every layer (add their folder to LAYERS): {unplaced}"


def test_no_module_imports_a_layer_above_it():
    bad = []
    for module, path in _modules():
        own = _rank(module)
        if own is None:
            continue
        for imported in _imports(path):
            other = _rank(imported)
            if other is None or other[1] <= own[1]:
                continue
            if any(module.startswith(a) and imported.startswith(b) for a, b in ALLOWED):
                continue
            bad.append(f"{module} ({own[0]}) imports {imported} ({other[0]})")
    assert not bad, "imports of a higher layer:\n" + "\n".join(sorted(set(bad)))


def test_relative_imports_are_not_used():
    """Absolute imports only: a module's layer is visible in each of its import lines."""
    rel = [str(p.relative_to(ROOT)) for _, p in _modules()
           if any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(p.read_text())))]
    assert not rel, rel
