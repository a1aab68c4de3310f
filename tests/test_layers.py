"""The package's import graph: no loop between modules, no import from a lower layer to a higher one.

Every import counts, wherever it stands: at module level, inside a function (the lazy imports that keep
the plugin cheap) and under ``TYPE_CHECKING``. A type a lower layer needs from a higher one is declared
in the lower layer as a Protocol of the attributes it reads, so a layer can be read without the ones above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import pytest_sdxl

PACKAGE = "pytest_sdxl"
# Low to high. A module may import its own layer and those below it. settings.py validates what users
# type (variant names included), so it sits above the variants and everything else the faces' inputs
# reach, and just below the measurement that consumes it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("machine", ("pytest_sdxl", "pytest_sdxl.errors", "pytest_sdxl.machine")),
    ("pipelines", ("pytest_sdxl.pipelines",)),
    ("variants", ("pytest_sdxl.variants",)),
    ("results", ("pytest_sdxl.results",)),
    ("analysis", ("pytest_sdxl.analysis",)),
    ("reports", ("pytest_sdxl.reports",)),
    ("settings", ("pytest_sdxl.options", "pytest_sdxl.settings")),
    ("measurement", ("pytest_sdxl.measure",)),
    ("search", ("pytest_sdxl.tune",)),
    ("faces", ("pytest_sdxl.plugin", "pytest_sdxl.cli", "pytest_sdxl.suite", "pytest_sdxl.__main__")),
)


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__``)."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([package, *parts])] = path
    return modules


def imported_modules(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The package's modules one module imports, anywhere in its text (functions and TYPE_CHECKING included).

    ``from a import b`` counts as importing ``a.b`` where that is a module, ``a`` otherwise; a relative
    import is resolved against the module's package.
    """
    modules = set(known)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = name.split(".") if is_package else name.split(".")[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                elif base in modules:
                    found.add(base)
    found.discard(name)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = module_names(root, package)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def layer_of(module: str, layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS) -> int:
    """The index of the module's layer: the layer whose longest prefix matches it."""
    best, best_length = -1, -1
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__name__}")
    return best


def upward_imports(
    graph: Mapping[str, set[str]], layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS
) -> list[str]:
    """Each import from a lower layer to a higher one, as 'module (layer) -> module (layer)'."""
    found = []
    for module, targets in sorted(graph.items()):
        source = layer_of(module, layers)
        for target in sorted(targets):
            destination = layer_of(target, layers)
            if destination > source:
                found.append(f"{module} ({layers[source][0]}) -> {target} ({layers[destination][0]})")
    return found


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        # Iterative depth-first search: the graph is deep enough that recursion is a needless risk.
        work = [(node, iter(sorted(graph.get(node, ()))))]
        index[node] = lowest[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        while work:
            current, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = lowest[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    lowest[current] = min(lowest[current], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowest[parent] = min(lowest[parent], lowest[current])
            if lowest[current] == index[current]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == current:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(Path(pytest_sdxl.__file__).parent, PACKAGE)


def test_every_module_has_a_layer(graph: dict[str, set[str]]) -> None:
    assert len(graph) > 50  # the walk found the package, not an empty folder
    for module in graph:
        layer_of(module)


def test_no_import_loop(graph: dict[str, set[str]]) -> None:
    assert import_cycles(graph) == []


def test_no_import_from_a_lower_layer_to_a_higher_one(graph: dict[str, set[str]]) -> None:
    assert upward_imports(graph) == []


def test_the_checker_sees_function_level_relative_and_type_checking_imports(tmp_path: Path) -> None:
    package = tmp_path / "toy"
    (package / "low").mkdir(parents=True)
    (package / "high").mkdir()
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("")
    (package / "high" / "__init__.py").write_text("")
    (package / "high" / "top.py").write_text("import toy.low.base\n")
    (package / "low" / "base.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy.high import top\n"
    )
    (package / "low" / "helper.py").write_text("def later():\n    from . import base\n    from .base import x\n")
    layers = (("low", ("toy", "toy.low")), ("high", ("toy.high",)))
    toy = import_graph(package, "toy")
    assert toy["toy.low.helper"] == {"toy.low.base"}
    assert import_cycles(toy) == [["toy.high.top", "toy.low.base"]]
    assert upward_imports(toy, layers) == ["toy.low.base (low) -> toy.high.top (high)"]


# CONTRIBUTING.md's rule: small modules with one owner each, 400 lines at most.
MOST_LINES_A_MODULE = 400


def test_every_module_is_small_and_says_what_it_owns() -> None:
    package = Path(pytest_sdxl.__file__).parent
    too_long, undocumented = [], []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MOST_LINES_A_MODULE:
            too_long.append(f"{path.relative_to(package)}: {text.count(chr(10))} lines")
        if text.strip() and ast.get_docstring(ast.parse(text)) is None:
            undocumented.append(str(path.relative_to(package)))
    assert not too_long, f"split these by owner (at most {MOST_LINES_A_MODULE} lines): {too_long}"
    assert not undocumented, f"a module docstring says what it owns: {undocumented}"
