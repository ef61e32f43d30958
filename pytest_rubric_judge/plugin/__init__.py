"""The pytest plugin, registered through the `pytest11` entry point as this module.

It is a thin layer over the core, in small modules that share one thing, the run's state
in `config.stash` (`state`):

- `hooks`: options, configuration, the default judge;
- `runtest`: the judge context around each test and what each report says;
- `finish`: gates, baselines, reports and the closing summary at the end of the run;
- `xdist`: the controller's merge of what each worker found;
- `fixtures`: `judge` and `judge_baseline`;
- `redaction`: no report carries a credential.

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
