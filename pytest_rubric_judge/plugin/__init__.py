"""The pytest plugin, registered through the `pytest11` entry point as this module.

It is a thin layer over the core, in small modules that share one thing, the run's state
in `config.stash` (`state`):

- `hooks`: options, configuration, the default judge;
- `runtest`: the judge context around each test and what each report says;
- `finish`: gates, baselines, reports and the closing summary at the end of the run;
- `xdist`: the controller's merge of what each worker found;
- `fixtures`: `judge` and `judge_baseline`;
- `usage`: mistakes in how a test uses the judge, as one-line errors;
- `redaction`: no report carries a credential.

Which tests are judged. The `judge` marker is added to every test that requests the
`judge` or `judge_baseline` fixture and to every `judge_suite` test, so `pytest -m "not
judge"` deselects them. A test that calls an assertion with no `judge=` (so with the
run's judge) and neither requests a fixture nor carries `@pytest.mark.judge` is not
known to be judged until it runs: when `-m` names the `judge` marker, such a test is an
ERROR saying so, before the judge is asked, instead of being judged against the user's
selection. Request the `judge` fixture or mark the test.

Which judged assertions the run reports. The closing `rubric judge` summary, the
aggregates, the `--judge-fail-under` gates, `--judge-report` and `--judge-report-md`
cover the judged assertions that used the run's judge or were made in a test marked
`judge`. An assertion given a judge of its own (`judge=`) in an unmarked test is a test of
that judge, as in a suite that tests a judge configuration or this plugin itself: it
appears in its test's `rubric judge` report section (and JUnit properties) only; mark
the test `judge` to count it. A judged assertion that failed inside `pytest.raises` is
listed as CAUGHT and counts toward no gate. With no judge configured, each test's
error is one line, and the summary says once how to configure a judge.

Importing it costs next to nothing: no judge, pydantic, httpx, numpy, diskcache or YAML
is imported until a test needs the judge or a report is written.
"""

from __future__ import annotations

from .finish import pytest_sessionfinish, pytest_terminal_summary
from .fixtures import Baseline, BaselineMissingError, judge, judge_baseline
from .hooks import (
    pytest_addhooks,
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_rubric_judge_make_judge,
    pytest_unconfigure,
)
from .runtest import (
    pytest_collection_finish,
    pytest_make_collect_report,
    pytest_report_teststatus,
    pytest_runtest_call,
    pytest_runtest_makereport,
)
from .state import BaselineWrite, RubricJudgePlugin, get_plugin, plugin_key

__all__ = [
    "Baseline",
    "BaselineMissingError",
    "BaselineWrite",
    "RubricJudgePlugin",
    "get_plugin",
    "judge",
    "judge_baseline",
    "plugin_key",
    "pytest_addhooks",
    "pytest_addoption",
    "pytest_collection_finish",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_make_collect_report",
    "pytest_report_teststatus",
    "pytest_rubric_judge_make_judge",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_unconfigure",
]
