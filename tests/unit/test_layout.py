"""The layout's rules, read from the source (static imports, lazy and type-checking ones included):
no import cycle between modules, packages import one way, and the runtime package imports no
training, benchmark, evaluation or plotting code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "tinycot", "loadtest", "bench", "evaluation")
# package -> the packages of ours it may import
ALLOWED = {"server": set(), "loadtest": set(), "tinycot": {"server"},
           "bench": {"loadtest", "tinycot", "server"}, "evaluation": {"loadtest", "tinycot"}}
NOT_IN_RUNTIME = ("matplotlib", "tqdm", "torch", "transformers", "tokenizers")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The modules (ours, or third-party top-level names) `path` imports anywhere in it."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            while name and name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            out.add(name)
    return out


GRAPH = {name: imports_of(path, modules()) for name, path in modules().items()}


def test_no_module_is_in_an_import_cycle() -> None:
    ours = {n: {m for m in deps if m in GRAPH and m != n} for n, deps in GRAPH.items()}
    # Tarjan-free check: depth-first search with colours, reporting the first cycle found
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(ours[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(ours):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_one_way(package: str) -> None:
    for name, deps in GRAPH.items():
        if name.split(".")[0] != package:
            continue
        for dep in deps:
            top = dep.split(".")[0]
            if top in PACKAGES and top != package:
                assert top in ALLOWED[package], f"{name} imports {dep}"


def test_the_runtime_imports_no_training_benchmark_or_plotting_code() -> None:
    for name, deps in GRAPH.items():
        if name.split(".")[0] == "server" and name != "server.engine":
            assert not {d.split(".")[0] for d in deps} & set(NOT_IN_RUNTIME), name
    assert {"vllm"} & {d.split(".")[0] for d in GRAPH["server.engine"]}
    others = [n for n, deps in GRAPH.items() if n != "server.engine" and n.startswith("server")
              and "vllm" in {d.split(".")[0] for d in deps}]
    assert not others, f"only the engine adapter imports vLLM: {others}"
