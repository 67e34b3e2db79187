"""The package's layers point one way: no import cycle, counting every import (also those inside functions), and
no module imports from a layer above its own. The layers, from the bottom up, are those of the README's diagram."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cmtutor"

#: Bottom first. A module may import from its own layer (without a cycle) and from the layers below it.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("core",),
    ("data", "nets", "hardware"),
    ("methods",),
    ("config",),
    ("checkpoint",),
    ("sampler",),
    ("training",),
    ("evaluation",),
    ("course",),
    ("benchmarks",),
    ("explorers", "exercises"),
    ("cli", "nbtools", "quickstart", "__main__"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every cmtutor module ``path`` imports, anywhere in the file (``from X import name`` counts module X.name
    when that is a module, else X; a type-only import under ``if TYPE_CHECKING:`` does not count)."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "cmtutor")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cmtutor":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in known else node.module)
    return {m for m in found if m in known}


def layer(module: str) -> int:
    parts = module.split(".")
    return RANK[parts[1]] if len(parts) > 1 else -1


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    # A package's __init__ may gather its submodules (its public face); a submodule that imports from its own
    # package's face instead of the submodule closes a cycle through that __init__, which this graph shows.
    return {m: imports_of(p, known) - {m} for m, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_every_module_has_a_layer() -> None:
    missing = sorted(m for m in modules() if m != "cmtutor" and m.split(".")[1] not in RANK)
    assert not missing, f"modules outside every layer (add them to LAYERS and the README's diagram): {missing}"


def test_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_point_down() -> None:
    g = graph()
    upward = sorted(f"{m} -> {n}" for m, deps in g.items() for n in deps
                    if m != "cmtutor" and n != "cmtutor" and layer(n) > layer(m))
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: a made-up graph with a cycle and an upward edge is caught."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from cmtutor.cli import main\n")
    assert imports_of(f, {"cmtutor.cli"}) == {"cmtutor.cli"}  # inside a function: still counted
    assert layer("cmtutor.cli") > layer("cmtutor.core.losses")


@pytest.mark.parametrize("name", ["cmtutor.core", "cmtutor.data", "cmtutor.nets", "cmtutor.methods"])
def test_lower_layers_import_nothing_from_above(name: str) -> None:
    g = graph()
    for m, deps in g.items():
        if m == name or m.startswith(name + "."):
            above = {n for n in deps if layer(n) > layer(m)}
            assert not above, f"{m} imports {above}"
