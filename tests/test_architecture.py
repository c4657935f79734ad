"""The architecture, checked: imports flow one way and no module grows into several.

An AST pass over every ``import`` of the package, inside functions too (a
lazy import is still a dependency), except those under ``if TYPE_CHECKING:``,
which never run. What it holds the code to (see README, "The code"):

- no import cycle among ``lakehouse`` modules;
- the core (names, errors, config, lake, context, steps, runlog, locks, SQL
  helpers) imports nothing from the features above it;
- scoring and serving never import training or the search;
- no module over 700 lines (``cli.py`` aside: one thin function per command).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

# Parsed when a test here first needs it, not at collection (every test worker paid ~0.3 s
# for it), by one worker, once.
pytestmark = pytest.mark.xdist_group("architecture")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lakehouse"

CORE = ("lakehouse.names", "lakehouse.errors", "lakehouse.config", "lakehouse.lake",
        "lakehouse.context", "lakehouse.steps", "lakehouse.runlog", "lakehouse.locking",
        "lakehouse.sqlguard", "lakehouse.sqltext")
ABOVE_CORE = ("lakehouse.monitor", "lakehouse.recsys", "lakehouse.serve", "lakehouse.zones",
              "lakehouse.mockapi", "lakehouse.cli", "lakehouse.daily", "lakehouse.demo")
INFERENCE = ("lakehouse.recsys.score", "lakehouse.serve")
TRAINING = ("lakehouse.recsys.train", "lakehouse.recsys.search")
MAX_LINES = 700
LONG_ALLOWED = {"lakehouse.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


@functools.cache
def parsed(name: str) -> ast.Module:
    """Module ``name``'s syntax tree (shared by the tests: never change it)."""
    path = MODULES[name]
    return ast.parse(path.read_text(), str(path))


def imports_of(name: str) -> set[str]:
    """The lakehouse modules that module ``name`` imports when it runs."""
    path = MODULES[name]
    tree = parsed(name)
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from pkg import module`` depends on the module, not only on pkg.
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    resolved = set()
    for target in found:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


@functools.cache
def graph() -> dict[str, set[str]]:
    """Which lakehouse modules each lakehouse module imports."""
    return {name: imports_of(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_pass_sees_lazy_imports_and_skips_type_checking_ones(tmp_path):
    # The checker itself: an import inside a function counts, one for type hints does not.
    assert "lakehouse.lake" in graph()["lakehouse.context"]
    assert "lakehouse.recsys.families" in graph()["lakehouse.recsys.registry"]  # load_bundle's
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_lakehouse_modules():
    assert cycles(graph()) == []


@pytest.mark.parametrize("core", CORE)
def test_the_core_imports_nothing_above_it(core):
    for name in (m for m in MODULES if within(m, core)):
        above = sorted(m for m in graph()[name] if within(m, ABOVE_CORE))
        assert above == [], f"{name} imports {above}"


def test_scoring_and_serving_never_import_training_or_the_search():
    for name in (m for m in MODULES if within(m, INFERENCE)):
        reached, todo = set(), [name]
        while todo:  # transitively: a helper that imports training counts too
            for nxt in graph()[todo.pop()] - reached:
                reached.add(nxt)
                todo.append(nxt)
        assert sorted(m for m in reached if within(m, TRAINING)) == [], name


def test_no_module_holds_more_than_700_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES and name not in LONG_ALLOWED}
    assert long == {}


NAMED_ONCE = {"champion": "names.CHAMPION", "challenger": "names.CHALLENGER"}


def _docstrings_and_annotations(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            skip.add(id(body[0].value))
        annotations = [getattr(node, "annotation", None), getattr(node, "returns", None)]
        for annotation in filter(None, annotations):
            skip.update(id(n) for n in ast.walk(annotation))
    return skip


def test_alias_names_come_from_names_py_not_literals():
    # "champion" retyped in 25 places drifted from names.CHAMPION once; a type annotation
    # (Literal[...]) and prose are exempt.
    found = []
    for name in MODULES:
        if name == "lakehouse.names":
            continue
        tree = parsed(name)
        skip = _docstrings_and_annotations(tree)
        found += [f"{name}:{node.lineno} {node.value!r} (use {NAMED_ONCE[node.value]})"
                  for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in NAMED_ONCE
                  and id(node) not in skip]
    assert found == []
