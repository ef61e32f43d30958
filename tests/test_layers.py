"""The plugin's layers: what each imports, and what it costs a run that never judges.

- The command line imports no pytest: the option table (`options`) and the settings
  (`settings`) are plain Python that the plugin and `rubric-judge` both read.
- The pytest entry point (`pytest_rubric_judge.plugin`) imports none of numpy, httpx,
  pydantic, diskcache, PyYAML or aiohttp; a pytest run that uses no judge never does.
- In the plugin package, the fixtures and the hook modules share the run's state module
  and never import each other.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_rubric_judge
from pytest_rubric_judge.credentials import Secret
from pytest_rubric_judge.options import OPTIONS, PANEL_STRATEGIES
from pytest_rubric_judge.settings import OptionError, Sources, read_settings

pytest_plugins = ["pytester"]

HEAVY = ("numpy", "httpx", "pydantic", "diskcache", "yaml", "aiohttp")
PACKAGE = Path(pytest_rubric_judge.__file__).parent


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, timeout=120
    )


def _imported(importtime: str) -> set[str]:
    """Module names in `python -X importtime` output."""
    names = set()
    for line in importtime.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_the_command_line_imports_no_pytest() -> None:
    done = _python("-X", "importtime", "-m", "pytest_rubric_judge.cli", "--help")
    assert "rubric-judge" in done.stdout and "show" in done.stdout
    imported = _imported(done.stderr)
    assert "pytest_rubric_judge.options" in imported  # the shared table was read
    assert not {name for name in imported if name.split(".")[0] in ("pytest", "_pytest")}
    code = (
        "import sys, pytest_rubric_judge.cli as cli, pytest_rubric_judge.settings; "
        "cli.build_parser(); print('pytest' in sys.modules, '_pytest' in sys.modules)"
    )
    assert _python("-c", code).stdout.split() == ["False", "False"]


def test_the_entry_point_imports_nothing_heavy() -> None:
    code = (
        "import sys, json, pytest_rubric_judge.plugin; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert json.loads(_python("-c", code).stdout) == []


RECORD_MODULES = """
import json, os, sys

def pytest_unconfigure(config):
    with open(os.environ["MODULES_OUT"], "w") as out:
        json.dump(sorted(sys.modules), out)
"""


def test_a_run_that_never_judges_imports_nothing_heavy(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heavy modules loaded with the plugin are exactly those loaded without it."""
    pytester.makeconftest(RECORD_MODULES)
    pytester.makepyfile("def test_one():\n    assert 1 + 1 == 2\n")
    found = {}
    for name, args in (("with", []), ("without", ["-p", "no:rubric_judge"])):
        out = pytester.path / f"{name}.json"
        monkeypatch.setenv("MODULES_OUT", str(out))
        pytester.runpytest(*args).assert_outcomes(passed=1)
        found[name] = set(json.loads(out.read_text()))
    assert "pytest_rubric_judge.plugin" in found["with"]
    assert "pytest_rubric_judge.plugin" not in found["without"]
    added = found["with"] - found["without"]
    assert not {name for name in added if name.split(".")[0] in HEAVY}, sorted(added)


def _package_imports(module: Path) -> set[str]:
    """The package modules `module` imports (relative imports resolved within `plugin`)."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_fixtures_and_hooks_do_not_import_each_other() -> None:
    folder = PACKAGE / "plugin"
    hooks = {"hooks", "runtest", "finish", "xdist"}
    assert not _package_imports(folder / "fixtures.py") & hooks
    for name in hooks:
        assert "fixtures" not in _package_imports(folder / f"{name}.py"), name
    assert _package_imports(folder / "fixtures.py") == {"state"}


def test_the_panel_strategies_are_the_scoring_code_s() -> None:
    from pytest_rubric_judge.scoring import PANEL_STRATEGIES as SCORING

    assert tuple(PANEL_STRATEGIES) == tuple(SCORING)


# -- settings without pytest ------------------------------------------------------------------

KEY = "sk-layers-KEY-0a1b2c3d"
PASSWORD = "pw/layers+9"


def _sources(tmp_path: Path, cli: dict[str, object], environ: dict[str, str]) -> Sources:
    return Sources(
        cli=lambda dest: cli.get(dest),
        ini=lambda key: None,
        invocation_dir=tmp_path,
        rootpath=tmp_path,
        environ=environ,
    )


def test_settings_hold_the_key_as_a_secret_and_show_no_credential(tmp_path: Path) -> None:
    url = f"http://robot:{PASSWORD.replace('/', '%2F').replace('+', '%2B')}@judge.internal/v1"
    settings = read_settings(
        _sources(
            tmp_path,
            {"judge_panel": [(("m1", url), ("m2", "http://b.internal/v1"))]},
            {"OPENAI_API_KEY": KEY, "RUBRIC_JUDGE_BASE_URL": url},
        )
    )
    assert isinstance(settings.api_key, Secret) and settings.api_key.reveal() == KEY
    assert settings.judge_url == url  # passed to the judge as given
    shown = repr(settings) + str(settings)
    for form in (KEY, PASSWORD, "pw%2Flayers%2B9"):
        assert form not in shown
        assert form in settings.secret_forms() or form == PASSWORD.replace("/", "%2F")
    assert "http://***@judge.internal/v1" in shown and "api_key=Secret('***')" in shown
    assert {KEY, PASSWORD, "pw%2Flayers%2B9"} <= set(settings.secret_forms())


def test_a_bad_environment_value_is_an_option_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="environment variable RUBRIC_JUDGE_BASE_URL") as caught:
        read_settings(
            _sources(tmp_path, {}, {"RUBRIC_JUDGE_BASE_URL": f"ftp://u:{PASSWORD}@host/v1"})
        )
    assert PASSWORD not in str(caught.value)


def test_every_judge_option_has_a_flag_an_ini_key_and_help() -> None:
    for option in OPTIONS:
        assert option.cli == "--" + option.ini.replace("_", "-")
        assert option.help_text.startswith(option.help)
