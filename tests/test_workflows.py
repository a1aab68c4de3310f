"""The GitHub Actions workflows: valid against GitHub's schema, clean for zizmor, shaped as the README says.

The schema is the one check-jsonschema ships (``--builtin-schema vendor.github-workflows``) and
zizmor runs offline, so neither needs the network; both come with the ``test`` extra. The
structural tests read the workflows with PyYAML.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"
TESTS = WORKFLOWS / "tests.yml"
GPU_BENCHMARKS = WORKFLOWS / "gpu-benchmarks.yml"
ALL_WORKFLOWS = (TESTS, GPU_BENCHMARKS)
# zizmor's severities, lowest first; anything above "Low" fails.
ALLOWED_SEVERITIES = {"Unknown", "Informational", "Low"}
PINNED_USES = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
# A pinned line keeps the version it stands for in a comment: "uses: owner/repo@<sha> # v1.2.3".
USES_LINE = re.compile(r"^\s*(- )?uses:\s*(?P<target>\S+)\s*(?P<comment>#.*)?$")
UNTRUSTED_IN_RUN = re.compile(r"\$\{\{")


def load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(workflow, dict)
    return workflow


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """The ``on:`` block; YAML 1.1 reads the bare key ``on`` as ``True``."""
    block = workflow.get("on", workflow.get(True))
    assert isinstance(block, dict)
    return block


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def uses_steps(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for _, step in steps(workflow) if step.get("uses", "").split("@")[0] == action]


def tool(name: str) -> str | None:
    """A console script of the running Python's environment, else one on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / name
    return str(beside) if beside.is_file() else shutil.which(name)


def describe(finding: dict[str, Any]) -> str:
    """One zizmor finding as ``file:line ident (severity): description``."""
    location = finding["locations"][0]
    path = Path(location["symbolic"]["key"]["Local"]["verbatim_path"]).name
    line = location["concrete"]["location"]["start_point"]["row"] + 1
    return f"{path}:{line} {finding['ident']} ({finding['determinations']['severity']}): {finding['desc']}"


@pytest.mark.parametrize("workflow", ALL_WORKFLOWS, ids=lambda path: path.name)
def test_workflow_matches_github_schema(workflow: Path) -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (it comes with the test extra)")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_above_low() -> None:
    zizmor = tool("zizmor")
    if zizmor is None:
        pytest.skip("zizmor is not installed (it comes with the test extra)")
    result = subprocess.run(
        [zizmor, "--offline", "--no-exit-codes", "--no-progress", "--format", "json", *map(str, ALL_WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    serious = [
        describe(finding)
        for finding in findings
        if not finding.get("ignored") and finding["determinations"]["severity"] not in ALLOWED_SEVERITIES
    ]
    assert not serious, "\n".join(serious)


@pytest.mark.parametrize("workflow", ALL_WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment(workflow: Path) -> None:
    used = [step["uses"] for _, step in steps(load(workflow)) if "uses" in step]
    assert used
    assert [target for target in used if not PINNED_USES.match(target)] == []
    for line in workflow.read_text(encoding="utf-8").splitlines():
        match = USES_LINE.match(line)
        if match:
            assert match["comment"] and re.search(r"v\d+", match["comment"]), f"no version comment: {line.strip()}"


@pytest.mark.parametrize("workflow", ALL_WORKFLOWS, ids=lambda path: path.name)
def test_least_privilege_and_no_expressions_in_shell(workflow: Path) -> None:
    parsed = load(workflow)
    # Nothing by default: each job names what it needs.
    assert parsed["permissions"] == {}
    for job_name, job in parsed["jobs"].items():
        assert job.get("permissions"), f"{job_name} declares no permissions"
    for job_name, step in steps(parsed):
        # Untrusted values (github.event.*, inputs.*) reach a shell only through env:.
        assert not UNTRUSTED_IN_RUN.search(step.get("run", "")), f"{job_name}: expression in run: {step['run']}"
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, job_name


def test_tests_workflow_runs_ci_on_a_hosted_runner_with_torch_from_the_cpu_index() -> None:
    workflow = load(TESTS)
    assert {"push", "pull_request"} <= set(triggers(workflow))
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert job["container"]["image"].startswith("python:3.11-")
    runs = [step.get("run", "") for step in job["steps"]]
    torch_step = next(index for index, run in enumerate(runs) if "torch==2.13.0" in run)
    ci_step = next(index for index, run in enumerate(runs) if ".ci/run" in run)
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_step]
    assert torch_step < ci_step


def test_gpu_workflow_triggers_and_model_input() -> None:
    on = triggers(load(GPU_BENCHMARKS))
    assert "pull_request" in on
    assert on["push"]["branches"] == ["main"]
    assert on["workflow_dispatch"]["inputs"]["model"]["default"] == "random:sdxl-turbo"


def test_gpu_benchmarks_run_on_self_hosted_runners_one_job_per_card() -> None:
    jobs = load(GPU_BENCHMARKS)["jobs"]
    self_hosted = {name: job for name, job in jobs.items() if "self-hosted" in job["runs-on"]}
    assert set(self_hosted) == {"benchmark"}
    for name, job in jobs.items():
        if name not in self_hosted:
            assert job["runs-on"] == "ubuntu-latest", f"{name} runs project-free work on a hosted runner"
    job = self_hosted["benchmark"]
    assert job["runs-on"][:3] == ["self-hosted", "linux", "gpu"]
    assert job["runs-on"][3] == "${{ matrix.card }}"
    assert len(job["strategy"]["matrix"]["card"]) >= 2
    assert job["strategy"]["fail-fast"] is False
    (checkout,) = [step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    # The runner's own CUDA torch stays: the project installs with torch pinned to it.
    assert "pip install torch" not in runs
    assert '--constraint "$RUNNER_TEMP/torch-constraint.txt"' in runs
    assert '--sdxl-model "$MODEL"' in runs and "--benchmark-json bench.json" in runs
    assert "--benchmark-compare-fail=min:10%" in runs
    assert "python -m pytest_sdxl compare main-baseline/results.json report/results.json" in runs
    assert re.search(r'asv-gpu\.conf\.json continuous[\s\\]+--machine "\$CARD"', runs)
    # Every asv benchmark process pinned to the CPUs one step chooses (a repository variable, else the last two).
    assert runs.count('--cpu-affinity "$ASV_CPUS"') == 2
    (choose,) = [step for step in job["steps"] if step.get("id") == "asv-cpus"]
    assert choose["env"]["ASV_CPU_AFFINITY"] == "${{ vars.ASV_CPU_AFFINITY }}"
    assert "sched_getaffinity" in choose["run"]


def test_gpu_benchmarks_upload_results_report_and_traces_per_card() -> None:
    workflow = load(GPU_BENCHMARKS)
    uploads = {step["with"]["name"]: step["with"]["path"] for step in uses_steps(workflow, "actions/upload-artifact")}
    assert set(uploads["gpu-benchmarks-${{ matrix.card }}"].split()) == {"bench.json", "report/", "traces/"}
    assert uploads["asv-results-${{ matrix.card }}"] == ".asv/results/"


def test_gpu_workflow_stores_main_per_card_and_deploys_one_asv_page() -> None:
    workflow = load(GPU_BENCHMARKS)
    jobs = workflow["jobs"]
    for step in uses_steps(workflow, "actions/cache/restore") + uses_steps(workflow, "actions/cache/save"):
        assert step["with"]["key"].startswith("gpu-baseline-${{ matrix.card }}-")
    granted = {name: job["permissions"] for name, job in jobs.items()}
    assert granted == {
        "benchmark": {"contents": "read"},
        "comment": {"pull-requests": "write"},
        "asv-history": {"contents": "write"},
        "asv-publish": {"contents": "read"},
        "deploy-pages": {"pages": "write", "id-token": "write"},
    }
    assert uses_steps(workflow, "actions/upload-pages-artifact")[0]["with"]["path"] == ".asv/html"
    assert jobs["deploy-pages"]["environment"]["name"] == "github-pages"
    publish = "\n".join(step.get("run", "") for step in jobs["asv-publish"]["steps"])
    assert "asv --config asv-gpu.conf.json publish" in publish


def test_gpu_comparison_goes_to_the_job_summary_on_every_run_and_keeps_the_gate() -> None:
    job = load(GPU_BENCHMARKS)["jobs"]["benchmark"]
    (compare,) = [step for step in job["steps"] if step.get("id") == "compare"]
    assert compare["if"] == "${{ !cancelled() && steps.install.outcome == 'success' }}"
    run = compare["run"]
    assert re.search(
        r"python -m pytest_sdxl compare main-baseline/results\.json report/results\.json[\s\\]+"
        r'--format markdown --summary "\$summary" \|\| status=\$\?',
        run,
    )
    # Every branch (no stored report, no new report, a comparison) writes the summary, which is appended
    # before the step exits with compare's status: a regression still fails the job, with its table shown.
    lines = run.splitlines()
    append = next(index for index, line in enumerate(lines) if '>> "$GITHUB_STEP_SUMMARY"' in line)
    assert 'cat "$summary"' in lines[append]
    assert lines[-1].strip() == 'exit "$status"' and append < len(lines) - 1
    assert run.count('| tee "$summary"') == 2 and '[ ! -s "$summary" ]' in run
    (upload,) = [
        step for step in uses_steps(load(GPU_BENCHMARKS), "actions/upload-artifact") if "comparison" in step["name"]
    ]
    assert upload["with"] == {
        "name": "gpu-comparison-${{ matrix.card }}",
        "path": "comparison/",
        "if-no-files-found": "warn",
    }
    assert (
        "github.event_name == 'pull_request'" in upload["if"] and "steps.compare.outcome != 'skipped'" in upload["if"]
    )


def test_one_comment_per_pull_request_from_this_repository_with_only_that_job_writing() -> None:
    jobs = load(GPU_BENCHMARKS)["jobs"]
    comment = jobs["comment"]
    assert comment["needs"] == "benchmark" and comment["runs-on"] == "ubuntu-latest"
    assert comment["permissions"] == {"pull-requests": "write"}
    assert [name for name, job in jobs.items() if "pull-requests" in job["permissions"]] == ["comment"]
    # Pull requests from forks get no comment; a regression (a failed benchmark job) still gets one.
    condition = comment["if"]
    assert "github.event_name == 'pull_request'" in condition
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    assert "!cancelled()" in condition
    # It runs no project code: no checkout, only the comparisons the card jobs uploaded.
    assert not any(step.get("uses", "").startswith("actions/checkout@") for step in comment["steps"])
    (download,) = [step for step in comment["steps"] if step.get("uses", "").startswith("actions/download-artifact@")]
    assert download["with"]["pattern"] == "gpu-comparison-*"
    (post,) = [step for step in comment["steps"] if "run" in step]
    assert post["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert post["env"]["PR_NUMBER"] == "${{ github.event.pull_request.number }}"
    run = post["run"]
    marker = re.search(r'marker="(<!-- .+ -->)"', run)
    assert marker is not None and 'echo "$marker"' in run  # the hidden marker opens the body
    # The existing comment is the bot's own one that starts with the marker; it is edited, else one is posted.
    assert 'gh api --paginate "repos/${GITHUB_REPOSITORY}/issues/${PR_NUMBER}/comments"' in run
    assert 'select(.user.login == "github-actions[bot]" and (.body | startswith($marker)))' in run
    assert 'gh api --method PATCH "repos/${GITHUB_REPOSITORY}/issues/comments/${existing}" --input payload.json' in run
    assert 'gh api --method POST "repos/${GITHUB_REPOSITORY}/issues/${PR_NUMBER}/comments" --input payload.json' in run
    assert "jq --null-input --rawfile body comment.md" in run
