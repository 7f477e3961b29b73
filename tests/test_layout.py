"""The package's layers, checked from the source: no import goes up a layer, layers form no cycle,
and only the CLI reaches the agents and the benchmarks.

Layers, lowest first: utils < data < models < envs < rewards < {eval, integrations, runs, testing} < cli.
Modules of one layer may import each other; the peers above rewards may import each other
one way (a cycle between them fails). ``seqgan_env/__init__.py`` is the public facade and ranks
with the CLI: no library module may import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "seqgan_env"
RANK = {"utils": 0, "data": 1, "models": 2, "envs": 3, "rewards": 4,
        "eval": 5, "integrations": 5, "runs": 5, "testing": 5, "cli": 6, "": 6}
OUTSIDE = ("seqgan_agents", "seqgan_benchmarks", "agents", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (top-level or inside functions), relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            for alias in node.names:  # `from seqgan_env.runs import rundir` imports a module
                candidate = f"{module}.{alias.name}"
                if _path_of(candidate) is not None:
                    found.add(candidate)
    return found


FOLDERS = {"seqgan_agents": "agents", "seqgan_benchmarks": "benchmarks"}  # installed name -> folder


def _path_of(module: str) -> Path | None:
    top, *rest = module.split(".")
    rel = Path(FOLDERS.get(top, top), *rest)
    for path in (ROOT / rel.with_suffix(".py"), ROOT / rel / "__init__.py"):
        if path.exists():
            return path
    return None


def _layer(module: str) -> str:
    """'models' for seqgan_env.models.sampling, 'cli' for seqgan_env.cli, '' for the facade."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PKG.rglob("*.py")):
        graph[_module_name(path)] = {m for m in _imports(path)
                                     if m.split(".")[0] in ("seqgan_env",) + OUTSIDE}
    return graph


GRAPH = _graph()


def test_every_module_sits_in_a_known_layer():
    stray = [m for m in GRAPH if _layer(m) not in RANK]
    assert not stray, f"modules outside the layers {sorted(RANK)}: {stray}"


def test_no_import_goes_up_a_layer():
    bad = []
    for src, targets in GRAPH.items():
        for dst in targets:
            if dst.split(".")[0] != "seqgan_env":
                continue
            if src != dst and RANK[_layer(dst)] > RANK[_layer(src)]:
                bad.append(f"{src} -> {dst} ({_layer(src) or 'facade'} imports the higher layer "
                           f"{_layer(dst) or 'facade'})")
            elif dst == "seqgan_env" and src != "seqgan_env" and _layer(src) != "cli":
                bad.append(f"{src} -> seqgan_env (the facade); import the defining module instead")
    assert not bad, "\n".join(bad)


def test_layers_form_no_cycle():
    edges: dict[str, set[str]] = {}
    witness: dict[tuple[str, str], str] = {}
    for src, targets in GRAPH.items():
        for dst in targets:
            a, b = _layer(src), _layer(dst)
            if dst.split(".")[0] == "seqgan_env" and a != b:
                edges.setdefault(a, set()).add(b)
                witness.setdefault((a, b), f"{src} -> {dst}")

    def reach(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reach(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = [f"{witness[(a, b)]} closes a cycle {a} -> {b} -> ... -> {a}"
              for (a, b) in witness if reach(b, a, {b})]
    assert not cycles, "\n".join(cycles)


def test_only_the_cli_reaches_agents_and_benchmarks():
    bad = [f"{src} -> {dst}" for src, targets in GRAPH.items() for dst in targets
           if dst.split(".")[0] in OUTSIDE and src != "seqgan_env.cli"]
    assert not bad, "only seqgan_env.cli may import agents or benchmarks:\n" + "\n".join(bad)


@pytest.mark.parametrize("folder", ["seqgan_env", "agents", "benchmarks", "tests", "examples"])
def test_agents_and_benchmarks_go_by_their_installed_names(folder):
    """``agents``/``benchmarks`` install as ``seqgan_agents``/``seqgan_benchmarks``; the bare names
    would load the same files twice (once per name) when run from the repository root."""
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for module in _imports(path):
            if module.split(".")[0] in ("agents", "benchmarks"):
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, "\n".join(bad)


def test_the_graph_sees_imports():
    """Guards the checks above against a parser that finds nothing."""
    assert "seqgan_env.data.tokenizer" in GRAPH["seqgan_env.envs.spec"]
    assert any(m.startswith("seqgan_benchmarks") for m in GRAPH["seqgan_env.cli"])


def test_no_module_import_cycle():
    """No two modules of the library or the agents import each other, directly or around a loop."""
    graph = dict(GRAPH)
    for path in sorted((ROOT / "agents").glob("*.py")):
        name = "seqgan_agents" + ("" if path.stem == "__init__" else f".{path.stem}")
        graph[name] = {m for m in _imports(path) if m.startswith(("seqgan_env", "seqgan_agents"))}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [])
            assert cycle is None, "import cycle: " + " -> ".join(cycle[cycle.index(cycle[-1]):])


def test_no_agents_module_does_several_jobs():
    """A module of agents/ holds one job; past about 500 lines it is doing several (split it, as reinforce/ is)."""
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "agents").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"
