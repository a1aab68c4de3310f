"""The session budget: one deadline for a session's measuring, shared out among the variants left.

The share arithmetic runs on a fake clock; the sessions (``run_protocol``, ``run``, the plugin) on
random:tiny with the deadline's clock faked, so that what each variant was given and whether the
deadline was passed are known in advance. No assertion is on speed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_sdxl.cli.main import build_parser, main
from pytest_sdxl.errors import SettingsError
from pytest_sdxl.measure import session_budget
from pytest_sdxl.measure.core import MIN_TIMED_CALLS
from pytest_sdxl.measure.profiles import settings_block, variant_settings
from pytest_sdxl.measure.protocol import ProgressEvent, run_protocol
from pytest_sdxl.measure.session_budget import SessionDeadline
from pytest_sdxl.options import OPTIONS_BY_NAME
from pytest_sdxl.plugin.state import SessionState
from pytest_sdxl.results.records import VariantRecord
from pytest_sdxl.results.schema import ResultSet, ResultsFileError, from_dict, to_dict
from pytest_sdxl.settings import resolve
from pytest_sdxl.variants.registry import Composition, parse_list


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class JumpingClock:
    """Zero at its first reading (the deadline's start), ``later`` at every reading after it."""

    def __init__(self, later: float) -> None:
        self.later, self.readings = later, 0

    def __call__(self) -> float:
        self.readings += 1
        return 0.0 if self.readings == 1 else self.later


def test_a_share_is_the_variant_budget_while_the_deadline_is_far() -> None:
    deadline = SessionDeadline(600.0, FakeClock())
    assert deadline.share_s(2.0, 29) == 2.0
    assert deadline.left_s() == 600.0 and deadline.overrun_s() == 0.0


def test_shares_shrink_as_time_passes_and_never_go_negative() -> None:
    clock = FakeClock()
    deadline = SessionDeadline(30.0, clock)
    assert deadline.share_s(30.0, 3) == 10.0
    clock.now = 15.0  # the first variant's load and compile took more than its share: the later ones get less
    assert deadline.share_s(30.0, 2) == 7.5
    clock.now = 29.0
    assert deadline.share_s(30.0, 1) == 1.0
    clock.now = 45.0
    assert deadline.share_s(30.0, 1) == 0.0 and deadline.left_s() == 0.0
    assert deadline.overrun_s() == 15.0
    assert deadline.recorded() == {"session_elapsed_s": 45.0, "session_overrun_s": 15.0}


def test_a_variant_that_stops_early_leaves_its_rest_to_the_later_ones() -> None:
    clock = FakeClock()
    deadline = SessionDeadline(30.0, clock)
    assert deadline.share_s(100.0, 3) == 10.0
    clock.now = 2.0
    assert deadline.share_s(100.0, 2) == 14.0


def test_a_share_needs_the_variant_itself_among_those_left() -> None:
    with pytest.raises(ValueError, match="variants left must be at least 1"):
        SessionDeadline(30.0, FakeClock()).share_s(2.0, 0)


def test_the_session_budget_has_a_flag_an_ini_key_and_a_variable() -> None:
    option = OPTIONS_BY_NAME["session_budget"]
    assert (option.flag, option.plugin_flag, option.ini_key, option.environment_variable) == (
        "--session-budget",
        "--sdxl-session-budget",
        "sdxl_session_budget",
        "PYTEST_SDXL_SESSION_BUDGET",
    )
    assert resolve({}, {}, {}).session_budget is None
    assert resolve({"session_budget": "900"}, {}, {}, flag_style="cli").session_budget == 900.0
    assert resolve({}, {"PYTEST_SDXL_SESSION_BUDGET": "12.5"}, {}).session_budget == 12.5
    assert resolve({}, {}, {"session_budget": "60"}).session_budget == 60.0
    assert resolve({}, {}, {"session_budget": "None"}).session_budget is None
    # The command line wins over the environment, which wins over the ini file.
    given = resolve({"session_budget": "5"}, {"PYTEST_SDXL_SESSION_BUDGET": "6"}, {"session_budget": "7"})
    assert given.session_budget == 5.0
    assert "session_budget=900" in resolve({"session_budget": "900"}, {}, {}).describe()
    assert "session_budget" not in resolve({}, {}, {}).describe()


@pytest.mark.parametrize(
    ("command_line", "environment", "ini", "message"),
    [
        (
            {"session_budget": "soon"},
            {},
            {},
            "command line --sdxl-session-budget: 'soon' is not a number of seconds; accepted: none, or seconds "
            "from 0.1 to 86400",
        ),
        (
            {},
            {"PYTEST_SDXL_SESSION_BUDGET": "0"},
            {},
            "environment variable PYTEST_SDXL_SESSION_BUDGET: '0' is outside",
        ),
        ({}, {}, {"session_budget": "auto"}, "tox.ini key sdxl_session_budget: 'auto' is not a number of seconds"),
        ({}, {}, {"session_budget": "nan"}, "tox.ini key sdxl_session_budget: 'nan' is outside the range"),
        (
            {"session_budget": "60", "profile": "reference"},
            {},
            {},
            "command line --sdxl-session-budget: a session budget needs the gate or full profile, but the profile "
            "is reference (command line --sdxl-profile), whose fixed rounds no budget shortens",
        ),
        (
            {},
            {"PYTEST_SDXL_PROFILE": "reference"},
            {"session_budget": "60"},
            "tox.ini key sdxl_session_budget: a session budget needs the gate or full profile, but the profile is "
            "reference (environment variable PYTEST_SDXL_PROFILE)",
        ),
    ],
)
def test_a_bad_session_budget_says_what_is_accepted(
    command_line: dict[str, str], environment: dict[str, str], ini: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        resolve(command_line, environment, ini, ini_name="tox.ini")
    assert message in str(raised.value)


def test_run_takes_the_session_budget_and_refuses_it_with_the_reference_profile(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert build_parser().parse_args(["run", "--session-budget", "60"]).session_budget == "60"
    for command in ("power", "overhead", "tune"):  # one variant at a time, or budgets of their own
        _, left = build_parser().parse_known_args([command, "--session-budget", "60"])
        assert "--session-budget" in left, command
    assert main(["run", "--quiet", "--session-budget", "60", "--profile", "reference"]) == 2
    error = capsys.readouterr().err
    assert "command line --session-budget: a session budget needs the gate or full profile" in error
    assert "accepted: a session budget with the gate or full profile, or none with reference" in error


def test_the_settings_block_records_the_session_budget() -> None:
    assert settings_block(resolve({}, {}, {}))["session_budget"] is None
    assert settings_block(resolve({"session_budget": "90"}, {}, {}))["session_budget"] == 90.0


def test_each_variant_is_measured_under_its_share() -> None:
    clock = FakeClock()
    settings = resolve({"session_budget": "6", "variant_budget": "1.5"}, {}, {})
    deadline = SessionDeadline(6.0, clock)
    assert variant_settings(settings, deadline, "cpu", 3).variant_budget == 1.5
    clock.now = 5.0
    assert variant_settings(settings, deadline, "cpu", 2).variant_budget == 0.5
    assert variant_settings(settings, None, "cpu", 2) is settings


def test_a_file_without_budget_s_still_reads_and_a_bad_one_is_refused() -> None:
    document = to_dict(ResultSet(variants=[VariantRecord("baseline", "exact", budget_s=0.25)]))
    assert from_dict(document).variants[0].budget_s == 0.25
    del document["variants"][0]["budget_s"]
    assert from_dict(document).variants[0].budget_s is None
    document["variants"][0]["budget_s"] = "soon"
    with pytest.raises(ResultsFileError, match=r"variants\[0\]\.budget_s"):
        from_dict(document)


def test_the_plugin_counts_the_variants_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    monkeypatch.setattr(session_budget, "CLOCK", FakeClock())
    state = SessionState(resolve({"session_budget": "30", "variant_budget": "100"}, {}, {}))
    assert state.deadline is not None
    state.planned = ["baseline", "tiny_vae", "batch"]
    assert state.variants_left("baseline") == 3
    assert state.measuring_settings("baseline", "cpu").variant_budget == 10.0
    assert state.session_share_s("baseline") == 10.0  # what a compile that can give up is given
    state.record_for("baseline", "exact")
    assert state.variants_left("tiny_vae") == 2
    assert state.variants_left("baseline") == 3  # a second benchmark of a measured variant counts itself
    # Under xdist a worker takes its part of the collected variants, less those it measured.
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    state.planned += ["vae_slicing", "cached_embeds"]
    assert state.variants_left("tiny_vae") == 2  # ceil(5 / 2) - 1
    state.record_for("tiny_vae", "lossy")
    state.record_for("batch", "exact")
    assert state.variants_left("vae_slicing") == 1
    assert SessionState(resolve({}, {}, {})).deadline is None
    assert SessionState(resolve({}, {}, {})).session_share_s("baseline") == math.inf


@pytest.fixture
def three_prompts(tmp_path: Path) -> Path:
    """One first generation and two timed prompts: fewer timed calls a round than the default five prompts."""
    path = tmp_path / "prompts.txt"
    path.write_text("a red cube\na blue sphere\na green cone\n", encoding="utf-8")
    return path


@pytest.mark.slow  # about 10 s on two busy cores: three variants, each loaded afresh
@pytest.mark.usefixtures("one_torch_thread")
def test_run_protocol_gives_each_variant_its_share_and_records_the_overrun(
    monkeypatch: pytest.MonkeyPatch, three_prompts: Path
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(session_budget, "CLOCK", clock)

    def loads_take_a_second_and_a_half(event: ProgressEvent) -> None:
        if event.step == "load":
            clock.now += 1.5

    settings = resolve(
        {"session_budget": "3", "variant_budget": "1", "runs": "1", "profile": "gate", "prompts": str(three_prompts)},
        {},
        {},
        flag_style="cli",
    )
    result = run_protocol(settings, parse_list("baseline,vae_slicing,cached_embeds"), loads_take_a_second_and_a_half)
    # 3 s among 3 variants: the baseline's own 1 s; then 1.5 s left for two; then nothing left for the last.
    assert [record.budget_s for record in result.variants] == [1.0, 0.75, 0.0]
    for record in result.variants:  # a share of nothing still times the minimum rounds
        assert record.status == "ok" and len(record.runs) == 1, record.reason
        assert len(record.runs[0].gen_s) >= MIN_TIMED_CALLS
    recorded = {key: result.settings[key] for key in ("session_budget", "session_elapsed_s", "session_overrun_s")}
    assert recorded == {"session_budget": 3.0, "session_elapsed_s": 4.5, "session_overrun_s": 1.5}


def test_each_variants_build_gets_its_equal_part_of_what_is_left_of_the_session(
    monkeypatch: pytest.MonkeyPatch, three_prompts: Path
) -> None:
    from pytest_sdxl.errors import VariantUnavailable
    from pytest_sdxl.measure import protocol

    clock = FakeClock()
    monkeypatch.setattr(session_budget, "CLOCK", clock)
    shares: dict[str, float] = {}

    def built_in_thirty_seconds(settings: object, composition: Composition, run: int, *rest: object) -> None:
        shares[composition.id] = float(rest[-1])  # type: ignore[arg-type]
        clock.now += 30.0  # a build and compile of 30 s, then the variant cannot run here
        raise VariantUnavailable("not measured in this test")

    monkeypatch.setattr(protocol, "measure_run", built_in_thirty_seconds)
    given = {"variant_budget": "1", "runs": "1", "profile": "gate", "prompts": str(three_prompts)}
    settings = resolve({**given, "session_budget": "60"}, {}, {}, flag_style="cli")
    result = run_protocol(settings, parse_list("baseline,vae_slicing,cached_embeds"))
    # 60 s over three: 20 s; the first took 30, so 30 s over two: 15 s; then nothing left. A compile that can
    # give up (compile_max_autotune) gives up there; the timed rounds' budgets stay their own 1 s, or less.
    assert shares == pytest.approx({"baseline": 20.0, "vae_slicing": 15.0, "cached_embeds": 0.0}, abs=0.5)
    assert [record.budget_s for record in result.variants] == [1.0, 1.0, 0.0]
    shares.clear()
    run_protocol(resolve(given, {}, {}, flag_style="cli"), parse_list("baseline,vae_slicing"))
    assert shares == {"baseline": math.inf, "vae_slicing": math.inf}  # no session budget: no cap


@pytest.mark.usefixtures("one_torch_thread")
def test_run_reports_a_session_budget_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], three_prompts: Path
) -> None:
    monkeypatch.setattr(session_budget, "CLOCK", JumpingClock(later=100.0))
    arguments = ["run", "--quiet", "--variants", "baseline", "--runs", "1", "--profile", "gate"]
    arguments += ["--prompts", str(three_prompts)]
    assert main([*arguments, "--session-budget", "5", "--report", str(tmp_path)]) == 0
    line = "session budget: 5 s, passed by 95.0 s (measuring took 100.0 s)"
    assert line in capsys.readouterr().out
    assert line in (tmp_path / "results.md").read_text(encoding="utf-8")
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["settings"]["session_budget"] == 5.0 and results["settings"]["session_overrun_s"] == 95.0
    assert [variant["budget_s"] for variant in results["variants"]] == [0.0]
    assert results["variants"][0]["status"] == "ok" and results["variants"][0]["runs"]


SUITE = """
def test_generation(sdxl_benchmark):
    assert sdxl_benchmark().ndim == 4
"""


@pytest.mark.slow  # about 5 s on two busy cores: two variants timed on one load
# pytester forgets the modules a child session imports (torch._inductor among them: importing it again fails); the
# fixture imports and runs the model code first, so the child finds it loaded.
@pytest.mark.usefixtures("model_code_imported")
def test_the_plugin_shares_the_session_budget_among_its_benchmarks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, three_prompts: Path
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    monkeypatch.setattr(session_budget, "CLOCK", JumpingClock(later=50.0))
    pytester.makepyfile(test_suite=SUITE)
    report = pytester.path / "report"
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--sdxl-variants",
        "baseline,tiny_vae",
        "--sdxl-runs",
        "1",
        "--sdxl-profile",
        "gate",
        "--sdxl-session-budget",
        "20",
        "--sdxl-prompts",
        str(three_prompts),
        "--sdxl-report",
        str(report),
    )
    assert result.ret == 0, result.stdout.str()
    results = json.loads((report / "results.json").read_text(encoding="utf-8"))
    assert {variant["variant"]: variant["budget_s"] for variant in results["variants"]} == {
        "baseline": 0.0,
        "tiny_vae": 0.0,
    }
    assert all(variant["runs"] for variant in results["variants"])
    assert results["settings"]["session_budget"] == 20.0 and results["settings"]["session_overrun_s"] == 30.0
    assert "session budget: 20 s, passed by 30.0 s" in (report / "results.md").read_text(encoding="utf-8")
    result.stdout.fnmatch_lines(["session budget: 20 s, passed by 30.0 s*"])  # the terminal's summary too


def test_the_plugin_refuses_a_session_budget_with_the_reference_profile(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--sdxl-session-budget", "60", "--sdxl-profile", "reference")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*command line --sdxl-session-budget: a session budget needs the gate or full*"])
