"""The host state: how much of the timed time the host kept the timing thread from a CPU.

The readings come from the kernel's counters (run-queue wait, preemptions, steal); a CPU hog started
beside the thread shows the wait, fake readings show the summaries, the comparison sentences and the
results file round trip, and ``compare`` says a busier host before its verdict.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import random
import time
from pathlib import Path

import pytest

from pytest_sdxl.cli.main import main
from pytest_sdxl.machine import host_state
from pytest_sdxl.machine.host_state import (
    HostReading,
    HostStateSample,
    HostStateSummary,
    compare_host_states,
    merge,
    read_host,
    summarize,
)
from pytest_sdxl.measure.records import call_waits
from pytest_sdxl.reports.markdown import comparison_markdown
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, load_results, save_results

has_schedstat = pytest.mark.skipif(
    host_state.thread_wait_seconds() is None, reason="this kernel keeps no run-queue wait per thread"
)


def spin(seconds: float) -> None:
    ended = time.perf_counter() + seconds
    while time.perf_counter() < ended:
        pass


def hog(seconds: float) -> None:
    spin(seconds)


@has_schedstat
def test_a_thread_that_shares_its_cpu_with_hogs_is_seen_waiting_and_a_sleep_is_not() -> None:
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # the hogs inherit the one CPU: they must share it with this thread
    context = multiprocessing.get_context("fork")
    hogs = [context.Process(target=hog, args=(1.2,)) for _ in range(2)]
    try:
        before = read_host()
        time.sleep(0.5)  # the code's own waiting: not the host's doing
        asleep = HostStateSample.between(before, read_host())
        for process in hogs:
            process.start()
        before = read_host()
        spin(0.6)
        crowded = HostStateSample.between(before, read_host())
    finally:
        for process in hogs:
            process.join()
        os.sched_setaffinity(0, allowed)
    assert asleep.waited_s is not None and crowded.waited_s is not None
    # A sleeping thread waits for a CPU only to wake (a little, where a neighbouring test holds the CPU).
    assert asleep.waited_s < 0.2 * asleep.wall_s
    # Three runnable threads on one CPU: this one waits for about two thirds of the time.
    assert crowded.waited_s > 0.3 * crowded.wall_s
    assert crowded.preemptions is not None and crowded.preemptions > 0


def test_a_reading_the_host_cannot_give_is_none_and_its_share_stays_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    never_counted = tmp_path / "schedstat"
    never_counted.write_text("0 0 1\n")  # a kernel that keeps the file but never counts
    monkeypatch.setattr(host_state, "SCHEDSTAT", never_counted)
    monkeypatch.setattr(host_state, "PROC_STAT", tmp_path / "missing")
    reading = read_host()
    assert reading.waited_s is None and reading.steal_s is None
    summary = summarize([HostStateSample.between(reading, read_host())], cpus=4)
    assert summary.waited_share is None and summary.steal_share is None
    assert summary.describe().startswith("run-queue wait n/a")


def test_samples_add_up_to_a_run_and_runs_merge_exactly_into_a_side() -> None:
    first = HostStateSample(wall_s=2.0, waited_s=0.2, preemptions=10, steal_s=0.0)
    second = HostStateSample(wall_s=2.0, waited_s=0.0, preemptions=2, steal_s=0.8)
    run = summarize([first, second], cpus=2)
    assert run.waited_share == pytest.approx(0.05)
    assert run.steal_share == pytest.approx(0.8 / (4.0 * 2))
    assert run.preemptions_per_s == pytest.approx(3.0)
    side = merge([run, summarize([HostStateSample(4.0, 0.0, 0, 0.0)], cpus=2), HostStateSummary(not_applicable="x")])
    assert side.rounds == 3 and side.wall_s == 8.0 and side.waited_share == pytest.approx(0.025)
    # A round without a wait reading makes the share unknown rather than a share of part of the time.
    partial = summarize([first, HostStateSample(2.0, None, 1, None)], cpus=2)
    assert partial.waited_share is None and partial.preemptions == 11
    assert merge([HostStateSummary(not_applicable="a"), HostStateSummary(not_applicable="b")]).describe() == "n/a: a; b"


def test_counters_that_went_backwards_count_as_nothing_not_as_negative_time() -> None:
    sample = HostStateSample.between(HostReading(1.0, 0.5, 5, 3.0), HostReading(2.0, 0.4, 4, 2.0))
    assert (sample.wall_s, sample.waited_s, sample.preemptions, sample.steal_s) == (1.0, 0.0, 0, 0.0)


def test_a_busier_host_is_said_past_the_wall_gates_threshold_and_not_within_it() -> None:
    quiet = summarize([HostStateSample(10.0, 0.05, 40, 0.0)], cpus=4)
    alike = summarize([HostStateSample(10.0, 0.2, 60, 0.0)], cpus=4)
    busy = summarize([HostStateSample(10.0, 1.2, 900, 0.0)], cpus=4)
    stolen = summarize([HostStateSample(10.0, 0.05, 40, 2.0)], cpus=4)
    assert compare_host_states(quiet, alike) == []
    (sentence,) = compare_host_states(quiet, busy)
    assert sentence.startswith("The head's host was busier: its measuring thread waited for a CPU 12.0%")
    assert "against 0.5% on the base" in sentence
    (sentence,) = compare_host_states(stolen, quiet, sides=("old", "new"))
    assert sentence.startswith("The old's host was busier: the hypervisor gave its CPUs to other guests 5.0%")
    assert compare_host_states(HostStateSummary(), busy) == []  # nothing to compare with


def test_the_summary_survives_the_results_file_and_an_old_file_reads_as_not_recorded(tmp_path: Path) -> None:
    record = RunRecord(1, 4.0, 0.3, [0.1, 0.1], 0.1, 0.1, 4.5)
    record.host_state = summarize([HostStateSample(3.0, 0.3, 12, 0.1)], cpus=8)
    old = RunRecord(2, 4.0, 0.3, [0.1, 0.1], 0.1, 0.1, 4.5)
    path = save_results(
        ResultSet(settings={}, variants=[VariantRecord("baseline", "exact", runs=[record, old])]), tmp_path / "r.json"
    )
    first, second = load_results(path).variants[0].runs
    assert first.host_state == record.host_state
    assert second.host_state is None
    assert HostStateSummary.from_dict(None).describe() == f"n/a: {host_state.NOT_RECORDED}"


def side_file(path: Path, waited: float, seed: int) -> Path:
    generator = random.Random(seed)
    runs = []
    for number in (1, 2, 3):
        gen = [0.1 * (1 + generator.gauss(0, 0.01)) for _ in range(12)]
        run = RunRecord(number, 4.0, 0.3, gen, sum(gen) / 12, sorted(gen)[6], 4.3 + sum(gen))
        run.host_state = summarize([HostStateSample(1.2, 1.2 * waited, 30, 0.0)] * 4, cpus=15)
        runs.append(run)
    variants = [VariantRecord("baseline", "exact", runs=runs)]
    return save_results(ResultSet(settings={"model": "random:tiny", "size": 64}, variants=variants), path)


def test_compare_says_the_hosts_before_its_verdict_in_text_and_markdown(tmp_path: Path) -> None:
    base, head = side_file(tmp_path / "base.json", 0.01, 1), side_file(tmp_path / "head.json", 0.2, 2)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        main(["compare", str(base), str(head)])
    lines = output.getvalue().splitlines()
    verdict = next(index for index, line in enumerate(lines) if line.startswith(("no regression", "regressed")))
    busier = next(index for index, line in enumerate(lines) if line.startswith("The head's host was busier"))
    assert busier < verdict
    assert "Host of the head: waited for a CPU 20.0% of 14.4 s timed" in output.getvalue()
    sides = (summarize([HostStateSample(1.0, 0.0, 1, 0.0)], 1), summarize([HostStateSample(1.0, 0.5, 9, 0.0)], 1))
    markdown = comparison_markdown(load_results(base), load_results(head), [], host_states=sides)
    assert "**Host**" in markdown and "- head: waited for a CPU 50.0% of 1.0 s timed" in markdown


def test_each_calls_wait_goes_beside_its_time_or_none_at_all(tmp_path: Path) -> None:
    rounds = [[0.1, 0.2], [0.3, 0.4]]
    assert call_waits(rounds, [[[0.01, 0.0], [0.02, 0.0]]], 1) == [0.01, 0.0, 0.02, 0.0]
    # A round read without waits (the counter failed) leaves the run without any: none is paired wrongly.
    assert call_waits(rounds, [[[0.01, 0.0], []]], 1) == []
    assert call_waits(rounds, [], 1) == []
    record = RunRecord(1, 4.0, 0.3, [0.1, 0.2], 0.15, 0.15, 4.6)
    record.gen_waited_s = [0.01, 0.0]
    variants = [VariantRecord("baseline", "exact", runs=[record])]
    path = save_results(ResultSet(settings={}, variants=variants), tmp_path / "waits.json")
    assert load_results(path).variants[0].runs[0].gen_waited_s == [0.01, 0.0]


def test_a_runs_report_says_the_host_and_names_the_variant_that_waited(tmp_path: Path) -> None:
    from pytest_sdxl.reports.host_state import host_state_notes

    quiet, crowded = (RunRecord(1, 4.0, 0.3, [0.1], 0.1, 0.1, 4.5) for _ in range(2))
    quiet.host_state = summarize([HostStateSample(2.0, 0.001, 4, 0.0)], cpus=2)
    crowded.host_state = summarize([HostStateSample(2.0, 0.8, 90, 0.0)], cpus=2)
    variants = [VariantRecord("baseline", "exact", runs=[quiet]), VariantRecord("batch", "exact", runs=[crowded])]
    first, second = host_state_notes(ResultSet(settings={}, variants=variants))
    assert first == "- Host while timed: waited for a CPU 20.0% of 4.0 s timed, 23.5 preemptions/s, steal 0.0%"
    assert second.startswith("- Waited for a CPU past 2.5% of its timed time: batch (40.0%);")
    assert host_state_notes(ResultSet(settings={}, variants=[VariantRecord("baseline", "exact", runs=[])])) == []


def test_an_undecided_wall_signal_is_told_its_cure_from_the_host_state() -> None:
    from pytest_sdxl.cli.ab_summary import what_would_decide

    def side(waited: float | None) -> ResultSet:
        run = RunRecord(1, 4.0, 0.3, [0.1], 0.1, 0.1, 4.5)
        if waited is not None:
            run.host_state = summarize([HostStateSample(10.0, 10.0 * waited, 40, 0.0)], cpus=15)
        return ResultSet(settings={}, variants=[VariantRecord("batch", "exact", runs=[run])])

    crowded = what_would_decide([side(0.0), side(0.12)])
    assert crowded.startswith("the timing thread waited for a CPU 0.0% and 12.0% of its timed time")
    assert "keep the runner to the job" in crowded
    below = what_would_decide([side(0.0001), side(0.0002)])
    assert "hardly waited for a CPU (0.0% and 0.0%" in below and "keeping other work off the runner would not" in below
    assert what_would_decide([side(None), side(0.2)]).startswith("more processes a side (--pairs) or a quieter host")
