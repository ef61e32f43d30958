"""Judging the judge, corrected for chance: Cohen's kappa, the format probe and the
self-preference warning of `rubric-judge calibrate`.

Kappa and its large-sample interval are checked against published worked examples (SAS
PROC FREQ's simple kappa and ASE); the probe against fake judges of known taste (one that
loves Markdown, one that reads only the words, one that prefers plain text); the warning
against gold files that name the models that wrote them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from pytest_rubric_judge.agreement import cohen_kappa, kappa_from_table
from pytest_rubric_judge.calibration import (
    CalibrationReport,
    GoldRow,
    compute_report,
    parse_gold,
    run_calibration,
    summary_text,
)
from pytest_rubric_judge.cli import main
from pytest_rubric_judge.families import model_families, self_preference_warning
from pytest_rubric_judge.format_probe import (
    DEFAULT_FORMAT_PROBE,
    looks_like_markdown,
    plain_words,
    probe_pairs,
    sentences,
    to_markdown,
)
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.prompts import ParsedRequest
from pytest_rubric_judge.testing import (
    DEFAULT_CRITERIA,
    ByResponsePolicy,
    FakeJudge,
    FixedPolicy,
    pass_yaml_answer,
    rubric_yaml_answer,
)

# -- kappa: worked examples -------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "kappa", "se", "low", "high"),
    [
        # SAS PROC FREQ, simple kappa of a 3x3 table (statsmodels checks against it too)
        ([[0, 4, 1], [0, 8, 0], [0, 1, 5]], 0.4842, 0.1380, 0.2137, 0.7547),
        # SAS example of John Uebersax's kappa page, 3x3
        ([[0, 0, 0], [5, 16, 3], [8, 12, 28]], 0.3333, 0.0814, 0.1738, 0.4929),
        # SAS PROC FREQ's "SkinCondition" example, 4x4: kappa 0.3449, CI (0.2030, 0.4868)
        (
            [[10, 4, 1, 0], [5, 10, 12, 2], [2, 4, 12, 5], [0, 2, 6, 13]],
            0.3449,
            0.0724,
            0.2030,
            0.4868,
        ),
    ],
)
def test_kappa_and_its_interval_match_published_examples(
    table: list[list[int]], kappa: float, se: float, low: float, high: float
) -> None:
    result = kappa_from_table(table)
    assert result.value is not None and result.interval is not None
    assert result.value == pytest.approx(kappa, abs=5e-5)
    assert result.interval.se == pytest.approx(se, abs=5e-5)
    assert result.interval.low == pytest.approx(low, abs=5e-5)
    assert result.interval.high == pytest.approx(high, abs=5e-5)
    assert result.interval.method == "fleiss-cohen-everitt" and result.interval.level == 0.95
    # kappa and its standard error are symmetric in the two raters
    flipped = kappa_from_table([list(column) for column in zip(*table, strict=True)])
    assert flipped.value == pytest.approx(result.value)
    assert flipped.interval is not None and flipped.interval.se == pytest.approx(se, abs=5e-5)


def test_kappa_from_labels_is_kappa_of_their_table() -> None:
    # judge (rows) against gold (columns), categories A>B, A=B, B>A: SAS's 3x3 table
    table = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]
    values = (1, 0, -1)
    judge, gold = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            judge += [values[i]] * count
            gold += [values[j]] * count
    result = cohen_kappa(judge, gold)
    assert result.value == pytest.approx(0.4842, abs=5e-5)
    assert result.observed == pytest.approx(13 / 19) and result.n == 19
    # p_e from the margins: judge (5, 8, 6) / 19, gold (0, 13, 6) / 19
    assert result.expected == pytest.approx((5 * 0 + 8 * 13 + 6 * 6) / 19**2)


def _no_nan(data: object) -> str:
    return json.dumps(data, allow_nan=False)  # raises on NaN or infinity


def test_degenerate_kappa_is_undefined_or_zero_never_nan() -> None:
    constant_gold = cohen_kappa([1, -1, 1, 1], [1, 1, 1, 1])
    assert constant_gold.value is None and constant_gold.interval is None
    assert constant_gold.undefined and "every gold label is A>B" in constant_gold.undefined
    assert constant_gold.observed == 0.75 and "undefined" in constant_gold.describe()
    both = cohen_kappa([0, 0, 0], [0, 0, 0])
    assert both.value is None and both.undefined
    empty = cohen_kappa([], [])
    assert empty.value is None and empty.undefined == "no rows" and empty.observed is None
    # a judge that gives every row one label is no better than chance, exactly
    constant_judge = cohen_kappa([1, 1, 1, 1], [1, -1, 1, -1])
    assert constant_judge.value == 0.0 and constant_judge.interval is not None
    assert constant_judge.interval.low == constant_judge.interval.high == 0.0
    perfect = cohen_kappa([1, -1, 0, 1], [1, -1, 0, 1])
    assert perfect.value == 1.0 and perfect.interval is not None
    assert (perfect.interval.low, perfect.interval.high) == (1.0, 1.0)
    for result in (constant_gold, both, empty, constant_judge, perfect):
        _no_nan(result.model_dump(mode="json"))
        assert "nan" not in result.describe().lower()


def test_interval_is_clipped_to_kappas_range() -> None:
    result = cohen_kappa([1, -1, 1, -1, 1], [1, -1, 1, -1, -1])
    assert result.interval is not None
    assert -1.0 <= result.interval.low <= result.value <= result.interval.high <= 1.0


# -- kappa in the report ----------------------------------------------------------------


def _rows(n: int) -> list[GoldRow]:
    """Plain-text rows; the good response (three sentences) in slot A for even rows."""
    rows = []
    for i in range(n):
        good = f"good answer {i}. It shows each step. The result is {i}."
        bad = f"bad answer {i}. It guesses."
        a, b, label = (good, bad, 1) if i % 2 == 0 else (bad, good, -1)
        rows.append(GoldRow(i, str(i), f"question {i}", a, b, label))
    return rows


def _content(text: str) -> str:
    """The words of a response, Markdown taken out when it is the probe's."""
    return " ".join(plain_words(text))


def right_judge(request: ParsedRequest) -> str:
    """Always right on the gold rows; judges content only, so equal words are a tie."""
    if request.task != "pass":
        return rubric_yaml_answer(DEFAULT_CRITERIA)
    a, b = _content(request.response_a or ""), _content(request.response_b or "")
    if a == b:
        return pass_yaml_answer({c["name"]: (3, 3) for c in DEFAULT_CRITERIA}, "A=B")
    if a.startswith("good"):
        return pass_yaml_answer({c["name"]: (5, 2) for c in DEFAULT_CRITERIA}, "A>B")
    return pass_yaml_answer({c["name"]: (2, 5) for c in DEFAULT_CRITERIA}, "B>A")


def plain_lover(request: ParsedRequest) -> str:
    """Prefers whichever response has no Markdown bold in it."""
    if request.task != "pass":
        return rubric_yaml_answer(DEFAULT_CRITERIA)
    fixed = FixedPolicy("A=B")
    bold_a, bold_b = "**" in (request.response_a or ""), "**" in (request.response_b or "")
    if bold_a and not bold_b:
        return fixed.answer(request, "B>A", 2, 5)
    if bold_b and not bold_a:
        return fixed.answer(request, "A>B", 5, 2)
    return fixed.answer(request, "A=B", 3, 3)


def _calibrate(policy: object, rows: list[GoldRow], probe: int = 0) -> CalibrationReport:
    with FakeJudge(policy) as fake, Judge(fake.url, fake.model, max_retries=0) as judge:
        return run_calibration(judge, rows, concurrency=8, format_probe=probe)


def test_a_perfect_judge_has_kappa_one_on_every_pass() -> None:
    report = _calibrate(right_judge, _rows(30))
    for key in ("reconciled", "forward", "reversed"):
        kappa = report.kappa[key]
        assert kappa.value == 1.0 and kappa.observed == 1.0 and kappa.n == 30, key
    assert report.format_probe is None  # format_probe=0 skips it


def test_a_slot_a_judge_has_raw_agreement_but_kappa_zero() -> None:
    """Always "A>B": right on half the rows by the luck of the slots, which kappa removes."""
    report = _calibrate(FixedPolicy("A>B", 5, 2), _rows(40))
    assert report.forward_agreement.rate == 0.5
    forward = report.kappa["forward"]
    assert forward.observed == 0.5 and forward.expected == 0.5 and forward.value == 0.0
    # oriented, the reversed pass always says B>A; the reconciled label is always a tie
    assert report.kappa["reversed"].value == 0.0
    reconciled = report.kappa["reconciled"]
    assert reconciled.value == 0.0 and reconciled.observed == 0.0
    text = summary_text(report)
    assert "Cohen's kappa against the gold labels" in text
    assert "forward pass" in text and "Fleiss-Cohen-Everitt" in text


def test_report_kappa_agrees_with_the_raw_rates() -> None:
    report = _calibrate(right_judge, _rows(10))
    assert report.kappa["forward"].observed == report.forward_agreement.rate
    assert report.kappa["reversed"].observed == report.reversed_agreement.rate
    # no gold ties here, so the reconciled label is right exactly when both orders are
    assert report.kappa["reconciled"].observed == report.reconciled_agreement.rate


def test_constant_gold_labels_make_kappa_undefined_in_json() -> None:
    rows = [GoldRow(i, str(i), f"q{i}", f"good answer {i}.", f"bad {i}.", 1) for i in range(6)]
    report = _calibrate(right_judge, rows)
    assert report.reconciled_agreement.rate == 1.0
    for kappa in report.kappa.values():
        assert kappa.value is None and kappa.undefined and "every gold label" in kappa.undefined
    data = json.loads(_no_nan(report.model_dump(mode="json")))
    assert data["kappa"]["reconciled"]["value"] is None
    assert "undefined: every gold label is A>B" in summary_text(report)


def test_an_empty_report_has_undefined_kappa() -> None:
    report = compute_report([], [{"id": "0", "error": "JudgeUnavailableError: down"}])
    assert all(k.value is None and k.undefined == "no rows" for k in report.kappa.values())
    _no_nan(report.model_dump(mode="json"))


# -- the plain-to-Markdown transformation -----------------------------------------------

TEXTS = [
    "Paris is the capital of France. It has about two million people. Visit in spring!",
    "The answer is 4.",
    "First line without a stop\nsecond line. Third sentence? Yes.",
    "  Spaces   everywhere.   Even   here.  ",
    "Use 2*3 to get six. Then add one.",
]


@pytest.mark.parametrize("text", TEXTS)
def test_markdown_keeps_every_word_in_order(text: str) -> None:
    markdown = to_markdown(text)
    assert not looks_like_markdown(text)
    assert looks_like_markdown(markdown)
    assert plain_words(markdown) == text.split()
    assert to_markdown(text) == markdown  # deterministic


def test_markdown_has_a_heading_bullets_and_bold() -> None:
    text = "Paris is the capital of France. It has about two million people. Visit in spring!"
    assert to_markdown(text) == (
        "## Paris is the capital of France.\n"
        "\n"
        "- **It has about two million people.**\n"
        "- Visit in spring!"
    )
    assert to_markdown("The answer is 4.") == "**The answer is 4.**"
    assert to_markdown("") == ""
    assert sentences("a b.  c d?\n\ne") == ["a b.", "c d?", "e"]


@pytest.mark.parametrize(
    "text",
    [
        "# Title\ntext",
        "- item\n- item",
        "1. first",
        "some **bold** text",
        "`code`",
        "> quote",
        "a [link](http://x)",
        "```\ncode\n```",
        "| a | b |",
        "an *emphasis* here",
    ],
)
def test_markdown_is_recognised(text: str) -> None:
    assert looks_like_markdown(text)


def test_probe_pairs_are_deterministic_plain_and_alternate_slots() -> None:
    rows = _rows(30)
    markdown_row = GoldRow(30, "md", "q", "## Already\n\n- markdown", "- also markdown", 1)
    rows.append(markdown_row)
    pairs = probe_pairs(rows, 8)
    assert pairs == probe_pairs(list(reversed(rows)), 8)  # order of the file does not matter
    assert len(pairs) == 8 and len({p.row.id for p in pairs}) == 8
    assert [p.markdown_in for p in pairs] == ["A", "B"] * 4
    for pair in pairs:
        winner = pair.row.response_a if pair.row.label == 1 else pair.row.response_b
        assert pair.plain == winner and pair.markdown == to_markdown(winner)
        job = pair.job()
        assert job[f"response_{pair.markdown_in}"] == pair.markdown
    assert all(p.row.id != "md" for p in probe_pairs(rows, 31))
    assert len(probe_pairs(rows, 31)) == 30
    assert probe_pairs(rows, 0) == []


# -- the format probe against judges of known taste -------------------------------------


def test_probe_detects_a_judge_that_prefers_markdown() -> None:
    report = _calibrate(ByResponsePolicy("**"), _rows(20), probe=12)
    probe = report.format_probe
    assert probe is not None and probe.requested == 12 and probe.pairs == 12
    assert probe.markdown_preferred.rate == 1.0 and probe.ties.rate == 0.0
    assert probe.markdown_share_of_decisive.rate == 1.0
    assert probe.markdown_share_of_decisive.interval.low > 0.5  # detected, not chance
    assert probe.position_consistency.rate == 1.0
    text = summary_text(report)
    assert "format probe" in text and "Markdown preferred" in text


def test_probe_of_a_content_only_judge_is_all_ties() -> None:
    probe = _calibrate(right_judge, _rows(20), probe=10).format_probe
    assert probe is not None and probe.pairs == 10
    assert probe.ties.rate == 1.0 and probe.markdown_preferred.successes == 0
    assert probe.markdown_share_of_decisive.n == 0
    assert probe.markdown_share_of_decisive.rate is None


def test_probe_detects_a_judge_that_prefers_plain_text() -> None:
    probe = _calibrate(plain_lover, _rows(20), probe=10).format_probe
    assert probe is not None
    assert probe.plain_preferred.rate == 1.0 and probe.markdown_share_of_decisive.rate == 0.0
    assert probe.markdown_share_of_decisive.interval.high < 0.5


def test_probe_notes_when_too_few_rows_are_plain() -> None:
    rows = _rows(3)
    probe = _calibrate(right_judge, rows, probe=DEFAULT_FORMAT_PROBE).format_probe
    assert probe is not None and probe.pairs == 3 and probe.requested == DEFAULT_FORMAT_PROBE
    assert probe.note and "only 3 gold rows" in probe.note


# -- model families and the self-preference warning -------------------------------------


@pytest.mark.parametrize(
    ("name", "families"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", {"qwen"}),
        ("qwen2.5:7b", {"qwen"}),
        ("qwen2.5-7b-instruct-q4_k_m.gguf", {"qwen"}),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", {"llama"}),
        ("gpt-4o-2024-05-13", {"gpt"}),
        ("o3-mini", {"gpt"}),
        ("claude-3-5-sonnet-20240620", {"claude"}),
        ("google/gemma-3-270m-it", {"gemma"}),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", {"mistral"}),
        ("microsoft/Phi-3.5-mini-instruct", {"phi"}),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", {"deepseek", "qwen"}),
        ("fake-judge", set()),
        ("ollama", set()),
        ("graphite-7b", set()),
    ],
)
def test_model_families(name: str, families: set[str]) -> None:
    assert model_families(name) == families


def test_warning_names_the_family_the_rows_and_the_reason() -> None:
    warning = self_preference_warning(
        "Qwen2.5-7B-Instruct", [("qwen2.5-72b-instruct", "gpt-4o"), ("gpt-4o",), ()]
    )
    assert warning is not None
    assert "same model family (qwen)" in warning and "in 1 gold row " in warning
    assert "qwen2.5-72b-instruct" in warning and "self-preference" in warning
    assert "prefer text written by their own family" in warning
    assert self_preference_warning("llama3:8b", [("qwen2.5-72b",)]) is None
    assert self_preference_warning("fake-judge", [("fake-judge",)]) is None
    assert self_preference_warning("gpt-4o", []) is None


def test_gold_formats_read_the_generator_fields() -> None:
    project = parse_gold(
        [
            json.dumps(
                {
                    "prompt": "p",
                    "response_A": "a",
                    "response_B": "b",
                    "label": "A>B",
                    "model_a": "qwen2.5-7b",
                    "model_b": "gpt-4o",
                    "generator": 3,
                }
            )
        ]
    )
    assert project[0].generators == ("qwen2.5-7b", "gpt-4o")  # non-strings are ignored
    bench = parse_gold(
        [
            json.dumps(
                {
                    "pair_id": "x",
                    "question": "q",
                    "response_A": "a",
                    "response_B": "b",
                    "label": "B>A",
                    "response_model": "gpt-4o-2024-05-13",
                }
            )
        ]
    )
    assert bench[0].generators == ("gpt-4o-2024-05-13",)
    reward = parse_gold(
        [
            json.dumps(
                {
                    "prompt": "p",
                    "chosen": "c",
                    "rejected": "r",
                    "chosen_model": "claude-3",
                    "rejected_model": "claude-3",
                }
            )
        ]
    )
    assert reward[0].generators == ("claude-3",)
    plain = parse_gold(
        [json.dumps({"prompt": "p", "response_A": "a", "response_B": "b", "label": "A=B"})]
    )
    assert plain[0].generators == ()


# -- the command ------------------------------------------------------------------------


def _gold_file(path: Path, n: int, generator: str | None) -> Path:
    lines = []
    for row in _rows(n):
        data: dict[str, object] = {
            "prompt": row.prompt,
            "response_A": row.response_a,
            "response_B": row.response_b,
            "label": "A>B" if row.label == 1 else "B>A",
        }
        if generator is not None:
            data["generator"] = generator
        lines.append(json.dumps(data))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(
    tmp_path: Path, model: str, generator: str | None, *extra: str
) -> tuple[int, dict[str, Any]]:
    gold = _gold_file(tmp_path / "gold.jsonl", 12, generator)
    out = tmp_path / "out"
    with FakeJudge(ByResponsePolicy("**"), model=model) as fake:
        status = main(
            [
                "calibrate",
                str(gold),
                "--out",
                str(out),
                "--no-plot",
                "--judge-url",
                fake.url,
                "--judge-model",
                fake.model,
                "--judge-cache",
                "off",
                "--judge-max-retries",
                "0",
                *extra,
            ]
        )
    return status, json.loads((out / "calibration.json").read_text(encoding="utf-8"))


def test_command_writes_kappa_probe_and_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, data = _run(tmp_path, "Qwen2.5-7B-Instruct", "qwen2.5-72b-instruct")
    assert status == 0
    printed = capsys.readouterr().out
    kappa = data["kappa"]
    assert set(kappa) == {"reconciled", "forward", "reversed"}
    for entry in kappa.values():
        assert {"value", "interval", "observed", "expected", "n", "undefined"} <= set(entry)
    probe = data["format_probe"]
    assert probe["pairs"] == DEFAULT_FORMAT_PROBE
    assert probe["markdown_preferred"]["rate"] == 1.0
    assert data["judge_model"] == "Qwen2.5-7B-Instruct"
    warnings = data["warnings"]
    assert isinstance(warnings, list) and len(warnings) == 1
    assert "self-preference bias" in warnings[0] and "12 gold rows" in warnings[0]
    assert "warning: self-preference bias" in printed
    assert "Cohen's kappa" in printed and "format probe" in printed
    assert not math.isnan(float(kappa["forward"]["observed"]))


def test_command_without_probe_or_shared_family(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, data = _run(tmp_path, "llama3:8b", "qwen2.5-72b-instruct", "--format-probe", "0")
    assert status == 0
    assert data["format_probe"] is None and data["warnings"] == []
    printed = capsys.readouterr().out
    assert "format probe" not in printed and "warning:" not in printed
