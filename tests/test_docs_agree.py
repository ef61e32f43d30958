"""What the documentation says about options, commands and outputs is what the program does.

Each test reads a statement from a document (a table, an option list, a property list, a
link) and checks it against the program: the option table, `--help` of each command, a
pytest run with `--junitxml`, a run in replay mode, a `--judge-serve` server that dies.
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_rubric_judge.cli import build_parser
from pytest_rubric_judge.options import ALL_OPTIONS
from pytest_rubric_judge.testing import FakeJudge

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _section(text: str, title: str) -> str:
    """The text of a `## title` section, up to the next `## ` heading."""
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


@pytest.fixture(autouse=True)
def _wide_help(monkeypatch: pytest.MonkeyPatch) -> None:
    """Help text on one long line per paragraph: no flag is broken across lines."""
    monkeypatch.setenv("COLUMNS", "1000")


def _help_text(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    return capsys.readouterr().out


def _flags(text: str) -> set[str]:
    return set(FLAG.findall(text)) - {"--help"}


# -- options.md ------------------------------------------------------------------------


def _options_table() -> dict[str, tuple[str, set[str]]]:
    """flag -> (ini key, environment variables) from the table in docs/options.md."""
    rows: dict[str, tuple[str, set[str]]] = {}
    for line in _section((DOCS / "options.md").read_text(), "The options").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`--"):
            continue
        flag = cells[0].strip("`").split("=")[0]
        env = set(re.findall(r"`([A-Z_]+)`", cells[2]))
        rows[flag] = (cells[1].strip("`"), env)
    return rows


def test_options_md_lists_every_option_and_only_those() -> None:
    documented = _options_table()
    actual = {option.cli: (option.ini, set(option.env)) for option in ALL_OPTIONS}
    assert set(documented) == set(actual)
    for flag, (ini, env) in actual.items():
        assert documented[flag] == (ini, env), flag


def test_options_md_has_a_section_for_every_option() -> None:
    text = (DOCS / "options.md").read_text()
    headings = " ".join(re.findall(r"^### (.+)$", text, re.MULTILINE))
    for option in ALL_OPTIONS:
        assert f"`{option.ini}`" in headings, option.ini


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("cli", "argument --judge-url"),
        ("env", "environment variable RUBRIC_JUDGE_BASE_URL"),
        ("ini", "ini key judge_url"),
    ],
)
def test_a_bad_url_is_a_usage_error_at_start(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str, where: str
) -> None:
    text = " ".join((DOCS / "options.md").read_text().split())
    assert "usage error when the configuration is read (exit status 4" in text
    pytester.makepyfile("def test_x(judge):\n    raise AssertionError('never runs')\n")
    bad = "ftp://judge.example/v1"
    args: list[str] = []
    if source == "cli":
        args.append(f"--judge-url={bad}")
    elif source == "env":
        monkeypatch.setenv("RUBRIC_JUDGE_BASE_URL", bad)
    else:
        pytester.makeini(f"[pytest]\njudge_url = {bad}\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR == 4
    assert where in result.stderr.str() and bad in result.stderr.str()
    assert "never runs" not in result.stdout.str()


def test_replay_never_asks_the_server(pytester: pytest.Pytester, fake_judge: FakeJudge) -> None:
    text = " ".join((DOCS / "options.md").read_text().split())
    assert "In `replay` mode the server is never asked anything, not even" in text
    pytester.makepyfile(
        """
        from pytest_rubric_judge import assert_preferred

        def test_x(judge):
            assert_preferred("a long and detailed answer", "short", prompt="q")
        """
    )
    cache = pytester.path / "cache"
    result = pytester.runpytest(
        f"--judge-url={fake_judge.url}", "--judge-cache=replay", f"--judge-cache-dir={cache}"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CacheMissError*judge model '(none set)'*"])
    assert fake_judge.requests == []  # not even GET /v1/models


# -- compare.md and calibration.md -----------------------------------------------------


def test_compare_md_options_are_the_commands_options(capsys: pytest.CaptureFixture[str]) -> None:
    text = (DOCS / "compare.md").read_text()
    documented = _flags(_section(text, "Options"))
    assert documented == _flags(_help_text(capsys, "compare"))
    rescore = _flags(_help_text(capsys, "rescore"))
    assert _flags(_section(text, "Offline analysis")) <= rescore | {"--row"}
    assert rescore <= _flags(_section(text, "Offline analysis"))


def test_calibration_md_synopsis_is_the_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    text = (DOCS / "calibration.md").read_text()
    start = text.index("```\nrubric-judge calibrate")
    synopsis = text[start : text.index("```", start + 3)]
    flags = _flags(_help_text(capsys, "calibrate"))
    judge_flags = {flag for flag in flags if flag.startswith("--judge-")}
    assert _flags(synopsis) == flags - judge_flags
    assert "[judge options]" in synopsis


def test_cli_help_does_not_speak_of_the_rootdir(capsys: pytest.CaptureFixture[str]) -> None:
    """Outside pytest there is no rootdir; the cache folder's default is said in other words."""
    commands = [["compare"], ["rescore"], ["show"], ["calibrate"]]
    commands += [["cache", action] for action in ("export", "import", "stats", "prune", "clear")]
    for command in commands:
        assert "rootdir" not in _help_text(capsys, *command), command


# -- README: JUnit properties ----------------------------------------------------------


def test_readme_lists_every_junit_property(
    pytester: pytest.Pytester, fake_judge: FakeJudge
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_rubric_judge import assert_meets_rubric, assert_preferred

        def test_pair(judge):
            assert_preferred("a long, detailed and clear answer to q", "short", prompt="q")

        @pytest.mark.judge_suite
        def test_suite(judge):
            assert_preferred("x", "a much longer and better answer to r", prompt="r")

        def test_grade(judge):
            assert_meets_rubric("a long, detailed answer", prompt="s", min_score=0.0)
        """
    )
    xml = pytester.path / "junit.xml"
    pytester.runpytest(f"--judge-url={fake_judge.url}", "--judge-cache=off", f"--junitxml={xml}")
    names = {prop.get("name", "") for prop in ET.parse(xml).iter("property")}
    names = {re.sub(r"^judge_criterion_.*", "judge_criterion_<name>", name) for name in names}
    names.add("judge_outcome")  # a judge error's, checked by the plugin's own tests
    junit = (ROOT / "README.md").read_text().split("**JUnit XML.**", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"`(judge_[a-z_<>]+)", junit))
    assert listed == names


# -- links and references --------------------------------------------------------------

OWN_DOCS = ["README.md", "docs/compare.md", "docs/calibration.md", "docs/ci.md"]
OWN_DOCS += ["docs/options.md", "docs/scaling.md", "docs/pointwise-samples-panels.md"]
OWN_DOCS += ["examples/README.md", "examples/ci/README.md"]


@pytest.mark.parametrize("name", OWN_DOCS)
def test_relative_links_point_at_files_that_exist(name: str) -> None:
    path = ROOT / name
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{name} links to {target}"


@pytest.mark.parametrize("name", OWN_DOCS)
def test_no_reference_to_a_document_the_repository_lacks(name: str) -> None:
    text = (ROOT / name).read_text()
    assert not re.search(r"\bSPEC\b", text), name


@pytest.mark.parametrize("name", OWN_DOCS)
def test_every_judge_flag_named_exists(name: str) -> None:
    known = {option.cli for option in ALL_OPTIONS}
    named = {flag for flag in _flags((ROOT / name).read_text()) if flag.startswith("--judge-")}
    assert named <= known, sorted(named - known)


# -- scaling.md: a --judge-serve server that exits early -------------------------------


def test_an_early_exit_is_one_line_and_the_log_tail(pytester: pytest.Pytester) -> None:
    text = " ".join((DOCS / "scaling.md").read_text().split())
    assert "the last 20 lines of its log" in text and "no traceback" in text
    pytester.makepyfile(
        """
        from pytest_rubric_judge import assert_preferred

        def test_one(judge):
            assert_preferred("new", "old", prompt="q")

        def test_two(judge):
            assert_preferred("new", "old", prompt="r")
        """
    )
    script = "import sys\nfor i in range(30): print(f'log line {i}')\nsys.exit(3)\n"
    (pytester.path / "dies.py").write_text(script)
    result = pytester.runpytest(f"--judge-serve={sys.executable} dies.py {{port}}")
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert "Traceback" not in out and "pytest_rubric_judge/" not in out
    assert out.count("starting ") == 1
    assert "exited with status 3 before it was ready" in out
    assert "log line 29" in out and "log line 10" in out and "log line 9\n" not in out


# -- every command explains itself -----------------------------------------------------


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every command and cache action, by its name (`cache stats`)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[f"{prefix}{name}"] = sub
                    walk(sub, f"{prefix}{name} ")

    walk(build_parser(), "")
    return found


COMMANDS = ["compare", "rescore", "calibrate", "cache"]
COMMANDS += [f"cache {action}" for action in ("export", "import", "stats", "prune", "clear")]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_a_description_and_every_option_help(name: str) -> None:
    parser = _subcommands()[name]
    assert parser.description, name
    for action in parser._actions:
        assert action.help, f"{name} {action.option_strings or action.dest}"


def test_show_has_a_description() -> None:
    test_every_command_has_a_description_and_every_option_help("show")
