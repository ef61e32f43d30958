"""`rubric-judge doctor` against the fake judge server (and `transformers serve`), and the
judge's default model: the first one the server lists.

Each doctor run goes through `main([...])` in-process, as a user's command line would, and
the fake judge is a real HTTP server whose policy, faults and latency make the judges the
doctor must tell apart: a good one, a position-biased one, one whose answers are garbage,
one that is too slow, one that cuts its answers, and nothing at all.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pytest_rubric_judge.cli import main
from pytest_rubric_judge.doctor import PAIRS, recommended_timeout
from pytest_rubric_judge.errors import JudgeNotConfiguredError
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.serve import free_port
from pytest_rubric_judge.server_info import context_length
from pytest_rubric_judge.testing import FakeJudge, FixedPolicy, HeuristicPolicy

ROOT = Path(__file__).resolve().parent.parent
STEPS = 2 + len(PAIRS)


def doctor(capsys: pytest.CaptureFixture[str], url: str, *flags: str) -> tuple[int, str, str]:
    """Run `rubric-judge doctor` on `url` (no retries): exit status, stdout, stderr."""
    capsys.readouterr()
    status = main(["doctor", "--judge-url", url, "--judge-max-retries", "0", *flags])
    out, err = capsys.readouterr()
    return status, out, err


def row(out: str, label: str) -> str:
    """The value of one `  label: value` line of the report."""
    found = re.search(rf"^  {re.escape(label)}:\s+(.*)$", out, re.MULTILINE)
    assert found is not None, f"no {label!r} line in:\n{out}"
    return found.group(1)


def recommended(out: str) -> list[str]:
    """The options under "recommended options:", without their reasons."""
    if "recommended options:" not in out:
        return []
    block = out.split("recommended options:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.startswith("  --")]


# -- a good judge ----------------------------------------------------------------------


def test_a_good_judge_is_reported_and_exits_0(
    fake_judge: FakeJudge,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, err = doctor(capsys, fake_judge.url)
    assert status == 0, err
    assert out.startswith(f"rubric-judge doctor: {fake_judge.url}\n")
    assert row(out, "models") == "fake-judge (judging with fake-judge)"
    assert row(out, "context length") == "not reported"
    assert row(out, "structured output") == "json_schema"
    assert re.fullmatch(
        r"\d+\.\d\d s, \d+ prompt \+ \d+ completion tokens, 1 request", row(out, "rubric call")
    )
    assert re.fullmatch(
        r"\d+\.\d\d s, \d+ prompt \+ \d+ completion tokens, 1 request", row(out, "one pass")
    )
    assert row(out, "position bias") == (
        "4 pairs, each judged in both orders: 0 of 4 flipped with the order, 0 inconsistent; "
        "4 of 4 picked the better response"
    )
    for pair in PAIRS:
        label = "A>B" if pair.better == "A" else "B>A"
        assert f"    {pair.name + ':':<9} {label} (forward {label}, reversed {label}), " in out
    assert row(out, "requests").startswith("12 (0 retries, 0 repairs, 0 judge errors)")
    assert row(out, "result") == "OK, 4 of 4 verdicts"
    assert recommended(out) == [
        "--judge-model=fake-judge",
        "--judge-structured-output=json_schema",
        "--judge-timeout=10",
    ]
    assert (
        f"  all together: --judge-url={fake_judge.url} --judge-model=fake-judge "
        "--judge-structured-output=json_schema --judge-timeout=10\n"
    ) in out
    assert "warnings:" not in out
    # progress: one line per step on stderr, and nothing else
    assert err.splitlines() == [
        f"rubric-judge doctor: [{n}/{STEPS}] {what}"
        for n, what in enumerate(
            [
                "asking for the model list (GET /v1/models)",
                f"one rubric call ({PAIRS[0].name})",
                *(f"pair {pair.name!r}, judged in both orders" for pair in PAIRS),
            ],
            1,
        )
    ]
    # every call reached the judge (4 rubrics, 2 passes per pair), and again on a rerun:
    # the throwaway cache neither reads nor leaves anything
    assert fake_judge.request_count == len(PAIRS) * 3
    assert doctor(capsys, fake_judge.url, "--judge-cache=rw")[0] == 0
    assert fake_judge.request_count == 2 * len(PAIRS) * 3
    assert list(tmp_path.iterdir()) == []


def test_json_report_for_machines(
    fake_judge: FakeJudge, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = doctor(
        capsys, fake_judge.url, "--json", "--quiet", "--judge-model=fake-judge"
    )
    assert status == 0 and err == ""
    report = json.loads(out)
    assert report["ok"] is True and report["problem"] is None
    assert report["models"] == ["fake-judge"] and report["model_given"] is True
    assert (report["verdicts"], report["flips"], report["picked_better"]) == (4, 0, 4)
    assert report["dialect"] == "json_schema"
    assert report["rubric"]["requests"] == 1 and report["one_pass"]["completion_tokens"] > 0
    assert [r["option"] for r in report["recommendations"]] == [
        "--judge-structured-output=json_schema",
        "--judge-timeout=10",
    ]
    assert [p["name"] for p in report["pairs"]] == [p.name for p in PAIRS]
    assert report["stats"]["requests"] == 12


def test_several_models_the_first_is_used_and_pinned(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeJudge(
        model="judge-big",
        models=["judge-big", "judge-small"],
        model_fields={"max_model_len": 32768},
    ) as fake:
        status, out, err = doctor(capsys, fake.url)
    assert status == 0, err
    assert row(out, "models") == "judge-big, judge-small (judging with judge-big)"
    assert row(out, "context length") == "32,768 tokens (max_model_len in GET /v1/models)"
    assert "  --judge-model=judge-big  " in out and "the server lists 2" in out
    assert "UserWarning" not in err  # the report names the choice itself


def test_a_model_the_server_does_not_list_is_a_warning(
    fake_judge: FakeJudge, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = doctor(capsys, fake_judge.url, "--judge-model=typo-judge")
    assert status == 0  # the fake judge answers whatever model is asked for
    assert row(out, "models") == "fake-judge (judging with typo-judge)"
    assert "  - the server does not list the model 'typo-judge'; it lists fake-judge" in out


# -- judges that should not gate a CI run ----------------------------------------------


def test_a_position_biased_judge_gets_the_bias_warning(
    fake_judge: FakeJudge, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_judge.policy = FixedPolicy("A>B")  # whatever sits in slot A wins
    status, out, _ = doctor(capsys, fake_judge.url)
    assert status == 0  # it gives verdicts; whether to trust them is the warning's point
    assert row(out, "position bias") == (
        "4 pairs, each judged in both orders: 4 of 4 flipped with the order, 4 inconsistent; "
        "0 of 4 picked the better response"
    )
    assert "A=B (forward A>B, reversed B>A), FLIPPED with the order; the better one was A" in out
    warnings = out.split("warnings:\n", 1)[1]
    assert "  - position bias: 4 of 4 verdicts flipped with the order" in warnings
    assert "  - the judge picked the clearly better response in only 0 of 4 pairs" in warnings


def test_a_judge_whose_answers_are_garbage_exits_1(
    fake_judge: FakeJudge, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_judge.policy = lambda request: "I would rather not say."
    status, out, err = doctor(capsys, fake_judge.url, "--quiet")
    assert status == 1
    assert row(out, "result") == "FAILED"
    assert row(out, "position bias") == "not tested: the rubric call failed"
    assert "2 requests; failed: JudgeOutputError" in row(out, "rubric call")
    assert fake_judge.request_count == 2  # the rubric and its repair; no pair repeats them
    assert "recommended options:" not in out and "warnings:" not in out
    [line] = err.splitlines()
    assert line.startswith("rubric-judge doctor: the judge produced no verdict: JudgeOutputError")
    assert "I would rather not say." in line


def test_a_judge_whose_passes_are_all_garbage_exits_1(
    fake_judge: FakeJudge, capsys: pytest.CaptureFixture[str]
) -> None:
    rubrics = HeuristicPolicy()
    fake_judge.policy = lambda r: rubrics(r) if r.task == "rubric" else "No comment."
    status, out, err = doctor(capsys, fake_judge.url, "--quiet")
    assert status == 1
    assert row(out, "position bias") == "not measured: no pair got a verdict"
    assert out.count(" judge error: JudgeOutputError: ") == len(PAIRS)
    assert "rubric call" in out and "failed" not in row(out, "rubric call")
    [line] = err.splitlines()
    assert line.startswith("rubric-judge doctor: the judge produced no verdict: JudgeOutputError")


def test_an_unreachable_url_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    status, out, err = doctor(capsys, url, "--quiet", "--judge-model=m")
    assert status == 1
    [line] = err.splitlines()
    assert line.startswith(f"rubric-judge doctor: cannot reach the judge at {url}: ")
    assert "refused the connection" in line and "Traceback" not in out + err
    assert out.splitlines()[0] == f"rubric-judge doctor: {url}"


def test_a_slow_judge_is_told_a_longer_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeJudge(latency=1.0) as fake:
        status, out, err = doctor(capsys, fake.url, "--quiet", "--judge-timeout=0.3")
        assert fake.request_count == 1  # the pairs are not tried after the rubric timed out
    assert status == 1
    assert row(out, "position bias") == "not tested: the rubric call failed"
    assert recommended(out) == ["--judge-timeout=0.6"]
    assert "timed out at 0.3 s" in out
    assert "no verdict" in err


def test_answers_cut_at_max_tokens_recommend_more(
    fake_judge: FakeJudge, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_judge.fault("truncated")  # the first answer stops half-way, finish_reason "length"
    status, out, _ = doctor(capsys, fake_judge.url, "--judge-max-tokens=512")
    assert status == 0
    assert "--judge-max-tokens=1024" in recommended(out)
    assert "1 answer(s) were cut at 512 tokens (finish_reason length)" in out
    assert "1 answer(s) could not be read at first and needed a repair request" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 2
    assert "no judge to check: give --judge-url" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["doctor", "--judge-url", "http://127.0.0.1:1/v1", "--no-such-flag"])
    assert info.value.code == 2


# -- pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "props", "expected"),
    [
        ([{"id": "m", "max_model_len": 8192}], None, (8192, "max_model_len in GET /v1/models")),
        (
            [{"id": "other", "max_model_len": 1}, {"id": "m", "context_length": 4096}],
            None,
            (4096, "context_length in GET /v1/models"),
        ),
        (  # llama-server: the served context from /props wins over the trained one
            [{"id": "m", "meta": {"n_ctx_train": 131072}}],
            {"default_generation_settings": {"n_ctx": 4096}},
            (4096, "default_generation_settings.n_ctx in GET /props"),
        ),
        (
            [{"id": "m", "meta": {"n_ctx_train": 131072}}],
            None,
            (131072, "meta.n_ctx_train in GET /v1/models (the context trained with)"),
        ),
        ([{"id": "m", "owned_by": "me"}], {"n_ctx": 2048}, (2048, "n_ctx in GET /props")),
        ([{"id": "m", "max_model_len": True}, "junk"], {"n_ctx": -1}, None),
        ([], None, None),
    ],
)
def test_context_length_from_what_servers_report(
    entries: list[object], props: dict[str, object] | None, expected: object
) -> None:
    assert context_length(entries, "m", props) == expected


def test_recommended_timeout() -> None:
    assert recommended_timeout(0.01) == 10
    assert recommended_timeout(4.0) == 20
    assert recommended_timeout(11.2) == 45


def test_doctor_md_options_are_the_commands_options(capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "docs" / "doctor.md").read_text()
    options = text.split("## Options\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", options))
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", capsys.readouterr().out))
    assert documented == shown - {"--help"}


def test_doctor_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from pytest_rubric_judge.cli import build_parser

    [choices] = [
        a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ]
    parser = choices["doctor"]
    assert parser.description
    assert all(action.help for action in parser._actions)
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    assert "rootdir" not in capsys.readouterr().out


# -- the judge's default model: the first the server lists ------------------------------


def test_without_a_model_the_first_listed_is_used_and_named() -> None:
    with FakeJudge(model="first", models=["first", "second", "third"]) as fake:
        with Judge(fake.url, None, max_retries=0) as judge:
            with pytest.warns(UserWarning) as caught:
                verdict = judge.compare("q", "a", "b")
            assert judge.model == "first"
        assert verdict.judge_model == "first"
        assert {r.body.get("model") for r in fake.requests if r.method == "POST"} == {"first"}
    [warning] = caught
    assert str(warning.message) == (
        "the judge server lists 3 models; judging with the first, 'first' (also listed: "
        "second, third); pin one with --judge-model or RUBRIC_JUDGE_MODEL"
    )


def test_a_server_that_lists_no_model_is_an_error_naming_the_fix() -> None:
    with FakeJudge(models=[]) as fake, Judge(fake.url, None, max_retries=0) as judge:
        with pytest.raises(JudgeNotConfiguredError) as info:
            judge.compare("q", "a", "b")
    assert str(info.value) == (
        f"the judge server at {fake.url} lists no models at GET /v1/models; name the model "
        "with --judge-model or RUBRIC_JUDGE_MODEL"
    )


def test_the_fake_judge_command_lists_several_models() -> None:
    command = [sys.executable, "-m", "pytest_rubric_judge.testing", "--models", "a, b"]
    with subprocess.Popen(
        [*command, "--max-lifetime", "60"], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = re.search(r"http://\S+/v1", process.stdout.readline())
            assert url is not None
            listed = httpx.get(f"{url.group()}/models", timeout=10).json()["data"]
            assert [entry["id"] for entry in listed] == ["a", "b"]
        finally:
            process.terminate()


# -- a real third-party server ---------------------------------------------------------

needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None or importlib.util.find_spec("fastapi") is None,
    reason="needs transformers[serving] (installed by the dev extra)",
)


@needs_transformers
def test_doctor_against_transformers_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tiny random model answers gibberish: the doctor lists the model, finds no
    verdict, and exits 1 with the raw text in its one line."""
    from pytest_rubric_judge.serve import JudgeServer

    support = Path(__file__).parent / "support" / "tiny_model.py"
    model = tmp_path / "tiny-model"
    subprocess.run([sys.executable, str(support), str(model)], check=True, timeout=300)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    exe = Path(sys.executable).with_name("transformers")
    command = f"{exe} serve {model} --host 127.0.0.1 --port {{port}} --device cpu"
    with JudgeServer(command, log_path=tmp_path / "server.log", startup_timeout=240) as server:
        status, out, err = doctor(
            capsys, server.url, "--quiet", f"--judge-model={model}", "--judge-max-tokens=24"
        )
    assert status == 1
    assert row(out, "models").endswith(f"(judging with {model})")
    assert row(out, "result") == "FAILED"
    # It takes response_format and ignores it: said, rather than claiming a constraint.
    assert row(out, "structured output").endswith("the server ignores the constraint")
    assert "--judge-max-tokens=48" in recommended(out)  # its answers were cut at 24
    [line] = err.splitlines()
    assert "the judge produced no verdict: JudgeOutputError" in line
    assert "its answer began" in line


def test_a_refused_dialect_and_an_ignored_constraint_are_said(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeJudge(engine="llama-cpp-python") as server:
        status, out, _ = doctor(capsys, server.url)
    assert status == 0
    assert row(out, "structured output") == (
        "json_object_schema (refused: json_schema (HTTP 500))"
    )
    assert "--judge-structured-output=json_object_schema" in recommended(out)
    # A server that takes response_format and answers YAML anyway is not called constrained.
    with FakeJudge(structured_answers=False) as server:
        status, out, _ = doctor(capsys, server.url)
    assert status == 0
    assert row(out, "structured output") == (
        "json_schema; accepted, but no answer was a JSON object: the server ignores the "
        "constraint"
    )
    assert "--judge-structured-output=off" in recommended(out)
