"""A test module that cannot be imported is pytest's own collection error, with the plugin
installed and a judge configured: the plugin's report hooks see collection reports too."""

from __future__ import annotations

import pytest


def test_a_collection_error_is_reported_by_pytest(
    pytester: pytest.Pytester, judge_args: list[str]
) -> None:
    pytester.makepyfile(
        test_broken="import a_module_that_does_not_exist\n\ndef test_x():\n    pass\n"
    )
    result = pytester.runpytest(*judge_args, "-rE")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR*test_broken.py*", "*1 error*"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    assert "user_properties" not in result.stdout.str() + result.stderr.str()
