"""`run --resume` on random:tiny: an interrupted matrix finished later, nothing measured twice, mismatches refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_sdxl.cli.main import INTERRUPTED, USAGE_ERROR, main
from pytest_sdxl.results.schema import load_results

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VARIANTS = "baseline,tiny_vae,cached_embeds"


@pytest.fixture
def measured_variants(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The variants the protocol measures from here on, in order (the real measurement runs)."""
    from pytest_sdxl.measure import protocol

    measure = protocol.measure_variant
    calls: list[str] = []

    def counted(settings: Any, composition: Any, *rest: Any) -> Any:
        calls.append(composition.id)
        return measure(settings, composition, *rest)

    monkeypatch.setattr(protocol, "measure_variant", counted)
    return calls


def run(tmp_path: Path, *extra: str, runs: str = "1") -> int:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na blue sphere\n")
    arguments = ["run", "--quiet", "--runs", runs, "--prompts", str(prompts), "--compile-cache", "off"]
    return main([*arguments, "--report", str(tmp_path / "report"), "--variants", VARIANTS, *extra])


def interrupt_after_the_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_sdxl.measure import protocol

    measure = protocol.measure_variant

    def interrupted(settings: Any, composition: Any, *rest: Any) -> Any:
        if composition.id != "baseline":
            raise KeyboardInterrupt
        return measure(settings, composition, *rest)

    monkeypatch.setattr(protocol, "measure_variant", interrupted)


@pytest.mark.slow
def test_resume_measures_only_what_the_interrupted_run_did_not_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, measured_variants: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with monkeypatch.context() as patch:
        interrupt_after_the_baseline(patch)
        assert run(tmp_path) == INTERRUPTED
    first = load_results(tmp_path / "report" / "results.json")
    assert first.not_measured == ["tiny_vae", "cached_embeds"]
    measured_variants.clear()

    assert run(tmp_path, "--resume") == 0
    assert measured_variants == ["tiny_vae", "cached_embeds"]
    joined = load_results(tmp_path / "report" / "results.json")
    assert [record.variant for record in joined.variants] == ["baseline", "tiny_vae", "cached_embeds"]
    assert all(record.runs for record in joined.variants)
    # The baseline's record is the first run's, untouched.
    assert joined.variants[0] == first.variants[0]
    assert (joined.partial, joined.not_measured) == ("", [])
    assert joined.settings["resumed_from"] == first.created
    # Both sessions' ids: the interrupted run's, kept through its saves, then the resuming run's.
    assert joined.session_ids[0] == first.session_ids[0] and len(set(joined.session_ids)) == 2
    assert "interrupted" not in (tmp_path / "report" / "results.md").read_text()
    assert "resuming" in capsys.readouterr().err
    # Each variant's measuring time is kept, so the matrix's time adds up over the resumed runs.
    seconds = [record.measure_s for record in joined.variants]
    assert seconds[0] == first.variants[0].measure_s and all(value is not None and value > 0 for value in seconds)
    total = sum(value for value in seconds if value is not None)
    assert (
        f"measuring time: {total:.0f} s over 3 variant(s), summed per variant (resumed: measured since"
        in (tmp_path / "report" / "results.md").read_text()
    )


@pytest.mark.slow
def test_resume_without_earlier_results_starts_from_the_beginning_and_resuming_it_measures_nothing(
    tmp_path: Path, measured_variants: list[str]
) -> None:
    """Two facts on one measured matrix (each matrix costs seconds): a first ``--resume`` measures every
    variant, and resuming that finished run measures nothing and writes the report again."""
    assert run(tmp_path, "--resume") == 0
    assert measured_variants == ["baseline", "tiny_vae", "cached_embeds"]
    (tmp_path / "report" / "results.md").unlink()
    assert run(tmp_path, "--resume") == 0
    assert measured_variants == ["baseline", "tiny_vae", "cached_embeds"]
    assert "| tiny_vae" in (tmp_path / "report" / "results.md").read_text()


def test_resume_refuses_other_settings_before_measuring_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with monkeypatch.context() as patch:
        interrupt_after_the_baseline(patch)
        assert run(tmp_path) == INTERRUPTED
    capsys.readouterr()
    from pytest_sdxl.measure import protocol

    def never(*arguments: Any) -> Any:
        raise AssertionError("a refused resume measured a variant")

    monkeypatch.setattr(protocol, "measure_variant", never)
    assert run(tmp_path, "--resume", runs="2") == USAGE_ERROR
    error = capsys.readouterr().err
    assert "cannot resume" in error and "- runs: 1 vs 2" in error
    assert "another --report folder" in error


def test_resume_needs_a_report_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--quiet", "--resume", "--variants", "baseline"]) == USAGE_ERROR
    assert "--resume needs --report DIR" in capsys.readouterr().err
