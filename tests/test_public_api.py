"""The public names: what `pytest_rubric_judge` and `pytest_rubric_judge.testing` export.

Importing the package is free: its names are imported on first use, so the pytest entry
point (a submodule, which imports the package first) and the command line pay only for
what they use.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_rubric_judge
from pytest_rubric_judge import testing

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(pytest_rubric_judge.__file__).parent
#: Third-party modules that the bare package import must not load.
HEAVY = ("pydantic", "httpx", "numpy", "yaml", "diskcache", "pytest", "_pytest")
#: Where users read which names to import.
DOCUMENTED = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "examples").glob("*.py")),
    *sorted((REPO / "benchmarks").glob("*.py")),
]
#: Tests import from the fake judge too; they are users of it like any other suite.
USERS_OF_TESTING = [*DOCUMENTED, *sorted((REPO / "tests").glob("*.py"))]


def python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def imported_names(module: str, paths: list[Path]) -> dict[str, list[str]]:
    """Names imported with `from <module> import ...` in `paths`, each with where."""
    pattern = re.compile(
        rf"^[ \t]*from {re.escape(module)} import (\([^)]*\)|[^\n]+)", re.MULTILINE
    )
    found: dict[str, list[str]] = {}
    for path in paths:
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            names = match[1].strip("()")
            for item in re.split(r"[,\s]+", re.sub(r"#[^\n]*", "", names)):
                if item and item != "as" and item.isidentifier():
                    found.setdefault(item, []).append(path.relative_to(REPO).as_posix())
    return found


def lazy_table() -> dict[str, str]:
    """Name -> defining module, from the `if TYPE_CHECKING:` imports of the package's
    `__init__`, which is what type checkers see."""
    tree = ast.parse((PACKAGE_DIR / "__init__.py").read_text(encoding="utf-8"))
    table: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name):
            if node.test.id != "TYPE_CHECKING":
                continue
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.dump(statement)
                for alias in statement.names:
                    table[alias.asname or alias.name] = f"pytest_rubric_judge.{statement.module}"
    return table


# -- pytest_rubric_judge ------------------------------------------------------------------


def test_importing_the_package_loads_nothing_heavy() -> None:
    loaded = json.loads(
        python("import json, sys, pytest_rubric_judge; print(json.dumps(list(sys.modules)))")
    )
    heavy = sorted(name for name in loaded if name.split(".")[0] in HEAVY)
    ours = sorted(name for name in loaded if name.startswith("pytest_rubric_judge."))
    assert heavy == []
    assert ours == []


def test_a_public_name_is_imported_on_first_use() -> None:
    code = (
        "import sys, pytest_rubric_judge\n"
        "from pytest_rubric_judge import Judge\n"
        "print(Judge.__module__, 'pytest_rubric_judge.judge' in sys.modules, "
        "'pytest_rubric_judge.fixtures' in sys.modules)"
    )
    module, judge_loaded, fixtures_loaded = python(code).split()
    assert module.startswith("pytest_rubric_judge.")
    assert judge_loaded == "True"
    assert fixtures_loaded == "False"  # Baseline, which needs pytest, is not loaded with it


def test_every_public_name_resolves_to_its_module() -> None:
    table = lazy_table()
    assert set(table) == set(pytest_rubric_judge.__all__) - {"__version__"}
    for name, module in table.items():
        value = getattr(pytest_rubric_judge, name)
        assert value is getattr(importlib.import_module(module), name), name


def test_every_public_name_resolves_in_a_fresh_process() -> None:
    code = (
        "import pytest_rubric_judge as p\n"
        "missing = [n for n in p.__all__ if getattr(p, n, None) is None]\n"
        "print(len(p.__all__), missing)"
    )
    assert python(code).split(maxsplit=1)[1].strip() == "[]"


def test_star_import_and_dir_list_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from pytest_rubric_judge import *", namespace)
    assert set(pytest_rubric_judge.__all__) <= set(namespace)
    assert set(pytest_rubric_judge.__all__) <= set(dir(pytest_rubric_judge))
    assert isinstance(pytest_rubric_judge.__version__, str)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Jugde'"):
        _ = pytest_rubric_judge.Jugde
    with pytest.raises(ImportError):
        exec("from pytest_rubric_judge import Jugde", {})


def test_documented_imports_are_public() -> None:
    submodules = {info.name for info in pkgutil.iter_modules([str(PACKAGE_DIR)])}
    used = imported_names("pytest_rubric_judge", DOCUMENTED)
    assert {"Judge", "assert_preferred"} <= set(used)  # the pattern reads the docs
    unknown = {
        name: where
        for name, where in used.items()
        if name not in pytest_rubric_judge.__all__ and name not in submodules
    }
    assert unknown == {}


# -- pytest_rubric_judge.testing ------------------------------------------------------------


def test_testing_exports_what_its_users_import() -> None:
    used = imported_names("pytest_rubric_judge.testing", USERS_OF_TESTING)
    assert {"FakeJudge", "FixedPolicy", "ByResponsePolicy"} <= set(used)
    missing = {name: where for name, where in used.items() if name not in testing.__all__}
    assert missing == {}
    for name in testing.__all__:
        assert getattr(testing, name) is not None, name


def test_testing_names_used_as_attributes_exist() -> None:
    """`testing.X` and `pytest_rubric_judge.testing.X` in the docs and the benchmarks."""
    pattern = re.compile(r"\btesting\.([A-Za-z_]\w*)")
    submodules = {info.name for info in pkgutil.iter_modules(testing.__path__)}
    for path in DOCUMENTED:
        for name in set(pattern.findall(path.read_text(encoding="utf-8"))) - {"py"}:
            where = path.relative_to(REPO)
            assert not name.startswith("_"), f"{where} uses the private testing.{name}"
            assert name in testing.__all__ or name in submodules, f"{where}: testing.{name}"


def test_testing_exports_the_fake_judge_toolkit() -> None:
    expected = {
        "DEFAULT_CRITERIA",
        "Answer",
        "ByResponsePolicy",
        "FakeJudge",
        "FakeJudgeHandler",
        "FaultKind",
        "FixedPolicy",
        "HeuristicPolicy",
        "ParsedRequest",
        "Policy",
        "RecordedRequest",
        "Reply",
        "TextFeatures",
        "grade_yaml_answer",
        "json_answers",
        "main",
        "pass_yaml_answer",
        "read_request",
        "rubric_yaml_answer",
    }
    assert expected <= set(testing.__all__)
    assert len(testing.__all__) == len(set(testing.__all__))


def test_testing_does_not_load_the_judge() -> None:
    """The fake judge is a server: a suite can import it without the judge's stack."""
    loaded = json.loads(
        python(
            "import json, sys, pytest_rubric_judge.testing; print(json.dumps(list(sys.modules)))"
        )
    )
    assert "pytest_rubric_judge.judge" not in loaded
    assert {name.split(".")[0] for name in loaded} & set(HEAVY) == {"yaml"}
