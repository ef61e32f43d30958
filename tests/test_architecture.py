"""The package's layering, read from its source with `ast` (nothing is imported).

- No import cycles between the package's modules. Only imports that run when a module is
  imported count: not those inside functions, not those under `if TYPE_CHECKING:`. A
  package's `__init__` is a node of its own; importing `a.b` does not count as importing
  `a` (Python runs `a/__init__` first, but a partly initialised parent is no cycle).
- No module uses another module's private names (`from .x import _name`, or `x._name`
  through an imported module). Private submodules (`from . import _x`) are fine.
- No module over `MAX_LINES` lines.
- The core (everything but the pytest adapter modules) does not import pytest when it is
  imported, and neither does anything the command line imports.

Each check is a function returning one readable line per problem; the last tests run them
on a small package written for the purpose, so a check that stopped seeing problems fails.
"""

from __future__ import annotations

import ast
import itertools
import textwrap
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import pytest_rubric_judge

PACKAGE = "pytest_rubric_judge"
ROOT = Path(pytest_rubric_judge.__file__).parent
MAX_LINES = 500
#: Modules allowed over MAX_LINES, with the reason. Keep it empty if at all possible.
LINE_LIMIT_EXCEPTIONS: dict[str, str] = {}
#: The modules that adapt the core to pytest; they (and their submodules) may import it.
PYTEST_ADAPTERS = ("plugin", "fixtures", "hookspecs")
#: Top-level names that count as pytest.
PYTEST_NAMES = frozenset({"pytest", "_pytest"})


@dataclass(frozen=True)
class Module:
    name: str  # dotted; a package's __init__ has the package's name
    relpath: str  # as shown in messages
    is_package: bool
    tree: ast.Module
    lines: int


@dataclass(frozen=True)
class Import:
    """One import statement: its absolute target, where it is and whether it runs on import."""

    source: Module
    target: str
    names: tuple[str, ...]  # what `from target import ...` takes; () for `import target`
    line: int
    at_import: bool

    @property
    def where(self) -> str:
        return f"{self.source.relpath}:{self.line}"


Graph = dict[str, dict[str, Import]]


def load_modules(root: Path = ROOT) -> dict[str, Module]:
    """Every .py file under the package directory `root`, parsed, by module name."""
    modules: dict[str, Module] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent)
        parts = list(relative.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        name = ".".join(parts)
        modules[name] = Module(name, relative.as_posix(), is_package, tree, len(text.splitlines()))
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _import_nodes(nodes: Iterable[ast.AST], at_import: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every import statement in `nodes`, with whether it runs when the module is imported."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, at_import
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _import_nodes(ast.iter_child_nodes(node), False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.body, False)
            yield from _import_nodes(node.orelse, at_import)
        else:
            yield from _import_nodes(ast.iter_child_nodes(node), at_import)


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module name a `from ... import` statement reads from."""
    if node.level == 0:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: Module) -> Iterator[Import]:
    for node, at_import in _import_nodes(module.tree.body, True):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, (), node.lineno, at_import)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            yield Import(module, _resolve(module, node), names, node.lineno, at_import)


def import_graph(modules: dict[str, Module]) -> Graph:
    """Module -> the package's modules it imports when imported, each with its statement.

    `from a import b` reaches the submodule `a.b` when there is one, else `a` itself
    (`b` is then a name `a` defines).
    """
    graph: Graph = {name: {} for name in modules}
    for module in modules.values():
        for found in imports_of(module):
            if not found.at_import:
                continue
            submodules = [f"{found.target}.{name}" for name in found.names]
            targets = [name for name in submodules if name in modules]
            if len(targets) < len(submodules) or not found.names:
                targets.append(found.target)  # `import target`, or a name `target` defines
            for target in targets:
                if target in modules and target != module.name:
                    graph[module.name].setdefault(target, found)
    return graph


def _components(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while not component or component[-1] != node:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _shortest_cycle(graph: Graph, component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, ending where it starts."""
    start, members = component[0], set(component)
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in sorted(graph[node]):
            if successor == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if successor in members and successor not in parent:
                parent[successor] = node
                queue.append(successor)
    raise AssertionError(f"no cycle through {start}")  # every component has one


def cycle_problems(modules: dict[str, Module]) -> list[str]:
    graph = import_graph(modules)
    problems: list[str] = []
    for component in _components(graph):
        cycle = _shortest_cycle(graph, component)
        steps = "".join(
            f"\n    {source} -> {target}  ({graph[source][target].where})"
            for source, target in itertools.pairwise(cycle)
        )
        problems.append(f"  {len(component)} modules ({', '.join(component)}), e.g.:{steps}")
    return problems


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_aliases(module: Module, modules: dict[str, Module]) -> dict[str, str]:
    """Local names that the module's imports bind to modules of the package."""
    aliases: dict[str, str] = {}
    for node, _ in _import_nodes(module.tree.body, True):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
    return aliases


def private_name_problems(modules: dict[str, Module], package: str = PACKAGE) -> list[str]:
    found_at: list[tuple[str, int, str]] = []
    for module in modules.values():
        for found in imports_of(module):
            if found.target.split(".")[0] != package or found.target == module.name:
                continue
            for name in found.names:
                if _private(name) and f"{found.target}.{name}" not in modules:
                    found_at.append(
                        (module.relpath, found.line, f"from {found.target} import {name}")
                    )
        aliases = _module_aliases(module, modules)
        for node in ast.walk(module.tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            owner = aliases.get(node.value.id)
            if (
                owner is not None
                and owner != module.name
                and _private(node.attr)
                and f"{owner}.{node.attr}" not in modules
            ):
                what = f"{node.value.id}.{node.attr} (a private name of {owner})"
                found_at.append((module.relpath, node.lineno, what))
    return [f"  {path}:{line}: {what}" for path, line, what in sorted(set(found_at))]


def length_problems(modules: dict[str, Module]) -> list[str]:
    return sorted(
        f"  {module.relpath}: {module.lines} lines"
        for module in modules.values()
        if module.lines > MAX_LINES and module.name not in LINE_LIMIT_EXCEPTIONS
    )


def _is_adapter(name: str, package: str) -> bool:
    adapters = [f"{package}.{adapter}" for adapter in PYTEST_ADAPTERS]
    return any(name == adapter or name.startswith(adapter + ".") for adapter in adapters)


def _pytest_imports(module: Module) -> list[Import]:
    return [
        found
        for found in imports_of(module)
        if found.at_import and found.target.split(".")[0] in PYTEST_NAMES
    ]


def core_pytest_problems(modules: dict[str, Module], package: str = PACKAGE) -> list[str]:
    return sorted(
        f"  {found.where}: {module.name} imports {found.target}"
        for module in modules.values()
        if not _is_adapter(module.name, package)
        for found in _pytest_imports(module)
    )


def cli_pytest_problems(modules: dict[str, Module], package: str = PACKAGE) -> list[str]:
    """Each module that the command line imports (transitively) and that imports pytest,
    with the chain of imports that reaches it."""
    graph = import_graph(modules)
    cli = f"{package}.cli"
    starts = [name for name in sorted(modules) if name == cli or name.startswith(cli + ".")]
    parent: dict[str, str | None] = dict.fromkeys(starts)
    queue = deque(starts)
    while queue:
        node = queue.popleft()
        for successor in sorted(graph[node]):
            if successor not in parent:
                parent[successor] = node
                queue.append(successor)
    problems: list[str] = []
    for name in sorted(parent):
        for found in _pytest_imports(modules[name]):
            chain = [name]
            while (up := parent[chain[-1]]) is not None:
                chain.append(up)
            route = " -> ".join(reversed(chain))
            problems.append(f"  {route} -> {found.target}  ({found.where})")
    return problems


# -- the package itself ------------------------------------------------------------------


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return load_modules()


def test_the_walk_reads_the_whole_package(modules: dict[str, Module]) -> None:
    assert modules[PACKAGE].is_package
    assert {f"{PACKAGE}.models", f"{PACKAGE}.testing", f"{PACKAGE}.cli"} <= set(modules)
    assert len(modules) > 20
    assert any(import_graph(modules).values())


def test_no_import_cycles(modules: dict[str, Module]) -> None:
    problems = cycle_problems(modules)
    assert not problems, "import cycles between the package's modules:\n" + "\n".join(problems)


def test_no_private_names_across_modules(modules: dict[str, Module]) -> None:
    problems = private_name_problems(modules)
    assert not problems, "private names of another module:\n" + "\n".join(problems)


def test_no_module_is_too_long(modules: dict[str, Module]) -> None:
    problems = length_problems(modules)
    allowed = "".join(f"\n  {name}: {why}" for name, why in sorted(LINE_LIMIT_EXCEPTIONS.items()))
    assert not problems, (
        f"modules over {MAX_LINES} lines:\n"
        + "\n".join(problems)
        + (f"\nallowed exceptions:{allowed}" if allowed else "\n(no exceptions are allowed)")
    )


def test_the_core_does_not_import_pytest(modules: dict[str, Module]) -> None:
    problems = core_pytest_problems(modules)
    adapters = ", ".join(f"{PACKAGE}.{name}" for name in PYTEST_ADAPTERS)
    assert not problems, (
        f"modules outside the pytest adapters ({adapters}) that import pytest when "
        "imported:\n" + "\n".join(problems)
    )


def test_the_command_line_does_not_import_pytest(modules: dict[str, Module]) -> None:
    problems = cli_pytest_problems(modules)
    assert not problems, "the command line imports pytest:\n" + "\n".join(problems)


# -- the checks on a package written to break every rule -----------------------------------

SAMPLE = {
    "__init__.py": "from .a import A\n",
    "a.py": "from . import b\nA = 1\n",
    "b.py": "from .c import C\n",
    "c.py": "from . import a\nC = 1\n",  # a -> b -> c -> a
    "d.py": """\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from .e import E
        else:
            from . import lone
        def later() -> None:
            from .e import E
        from .a import _hidden
        from . import _private_module
        from sample import b as bee
        bee._inner()
        """,
    "e.py": "import pytest\nfrom .d import later\nE = 1\n",  # no cycle: d imports e lazily
    "lone.py": "def f() -> None:\n    import pytest\n",
    "_private_module.py": "",
    "long.py": "x = 1\n" * (MAX_LINES + 1),
    "plugin/__init__.py": "import pytest\n",
    "cli/__init__.py": "from ..e import E\n",
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Module]:
    root = tmp_path_factory.mktemp("src") / "sample"
    for name, text in SAMPLE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return load_modules(root)


def test_the_checks_find_a_cycle_and_show_its_path(sample: dict[str, Module]) -> None:
    assert cycle_problems(sample) == [
        "  3 modules (sample.a, sample.b, sample.c), e.g.:"
        "\n    sample.a -> sample.b  (sample/a.py:1)"
        "\n    sample.b -> sample.c  (sample/b.py:1)"
        "\n    sample.c -> sample.a  (sample/c.py:1)"
    ]
    graph = import_graph(sample)
    assert set(graph["sample.d"]) == {
        "sample.lone",  # neither the TYPE_CHECKING import of e nor the one in a function
        "sample.a",
        "sample._private_module",
        "sample.b",
    }


def test_the_checks_find_private_names(sample: dict[str, Module]) -> None:
    assert private_name_problems(sample, "sample") == [
        "  sample/d.py:8: from sample.a import _hidden",
        "  sample/d.py:11: bee._inner (a private name of sample.b)",
    ]


def test_the_checks_find_long_modules_and_pytest(sample: dict[str, Module]) -> None:
    assert length_problems(sample) == [f"  sample/long.py: {MAX_LINES + 1} lines"]
    assert core_pytest_problems(sample, "sample") == ["  sample/e.py:1: sample.e imports pytest"]
    assert cli_pytest_problems(sample, "sample") == [
        "  sample.cli -> sample.e -> pytest  (sample/e.py:1)"
    ]
