"""asv end to end: ``asv continuous`` between commits of a scratch repository, ``asv check``, the published page.

The scratch repository (``tests/scratch_repository.py``, shared with ``tests/test_asv_find.py``) holds
the project as it is now on ``main``; ``unchanged`` adds a commit that touches only the README,
``slower-batch`` two README commits and one that makes only the batch path slower. asv builds each
commit into its own environment and runs a small selection of the ratio benchmarks: two that involve
the batch path and one that does not. ``asv publish`` output is then opened in headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from scratch_repository import CONTINUOUS_VARIANTS as VARIANTS
from scratch_repository import AsvRun, ScratchRepository, continuous_runs

pytestmark = pytest.mark.slow

BATCH_BENCHMARKS = {
    "bench_ratios.BatchOverOneByOne.track_batch_over_one_by_one('baseline', 4)",
    "bench_ratios.VariantOverBaseline.track_variant_over_baseline('batch')",
}
# The control: tiny_vae over the baseline never touches the batch path.
CONTROL_BENCHMARK = "bench_ratios.VariantOverBaseline.track_variant_over_baseline('tiny_vae')"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# asv's page loads its libraries from CDNs, which these machines cannot reach: the test serves
# Debian's copies instead (.ci/run installs them). None: no copy needed (bundled in Debian's flot,
# or only orders bars side by side).
DEBIAN_ASSETS = {
    "jquery-3.3.1.min.js": "/usr/share/javascript/jquery/jquery.min.js",
    "jquery.flot.min.js": "/usr/share/javascript/jquery-flot/jquery.flot.js",
    "jquery.flot.time.min.js": None,
    "jquery.flot.selection.min.js": None,
    "jquery.flot.categories.min.js": None,
    "jquery.flot.orderBars.js": None,
    "stupidtable.min.js": "/usr/share/javascript/jquery-stupidtable/stupidtable.min.js",
    "md5.min.js": "/usr/share/javascript/blueimp-md5/md5.min.js",
    "bootstrap.min.js": "/usr/share/javascript/bootstrap/js/bootstrap.min.js",
    "bootstrap.min.css": "/usr/share/javascript/bootstrap/css/bootstrap.min.css",
}
DEBIAN_PACKAGES = "chromium libjs-jquery libjs-jquery-flot libjs-jquery-stupidtable node-blueimp-md5 libjs-bootstrap"
REMOTE_TAG = re.compile(r'<(script|link)\b[^>]*?(?:src|href)="(https://[^"]+)"[^>]*>(?:</script>)?')


def changed_benchmarks(output: str, marks: Sequence[str] = ("+", "!")) -> set[str]:
    """Benchmarks in asv's comparison table whose change mark is one of ``marks`` (+ slower, ! failing)."""
    changed = set()
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0] in marks:
            changed.add(cells[-1])
    return changed


@pytest.fixture(scope="module")
def measured(asv_scratch: ScratchRepository) -> dict[str, Any]:
    return continuous_runs(asv_scratch)


@pytest.fixture(scope="module")
def runs(measured: dict[str, Any]) -> dict[str, AsvRun]:
    return {head: AsvRun.from_json(run) for head, run in measured["runs"].items()}


def test_continuous_reports_nothing_for_an_unchanged_commit(runs: dict[str, AsvRun]) -> None:
    run = runs["unchanged"]
    assert run.returncode == 0, run.describe()
    assert "BENCHMARKS NOT SIGNIFICANTLY CHANGED" in run.output, run.describe()
    assert changed_benchmarks(run.output, ("+", "-", "!", "x")) == set(), run.describe()


def test_continuous_flags_the_batch_benchmarks_and_nothing_else(runs: dict[str, AsvRun]) -> None:
    run = runs["slower-batch"]
    assert run.returncode == 1, run.describe()
    assert "PERFORMANCE DECREASED" in run.output, run.describe()
    assert changed_benchmarks(run.output) == BATCH_BENCHMARKS, run.describe()
    assert CONTROL_BENCHMARK not in run.output, run.describe()


def test_each_commit_ran_its_own_code(asv_scratch: ScratchRepository, measured: dict[str, Any]) -> None:
    """The environment holds a build of each commit, not the checkout that runs the tests."""
    commits = {asv_scratch.git("rev-parse", name) for name in ("main", "unchanged", "slower-batch")}
    assert commits <= set(measured["built"]), measured["built"]


def test_asv_check_passes_in_the_built_environment(asv_scratch: ScratchRepository, runs: dict[str, AsvRun]) -> None:
    with asv_scratch.exclusive():
        run = asv_scratch.asv("check", variants=VARIANTS)
    assert run.returncode == 0, run.describe()
    assert "No problems found" in run.output, run.describe()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable is not None
    command = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def wait_until_served(port: int, preview: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if preview.poll() is not None:
            raise AssertionError(f"asv preview exited with {preview.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"asv preview did not serve on port {port} within {timeout} s")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshot is kept: $PYTEST_SDXL_ARTIFACTS, else a folder of this pytest run."""
    chosen = os.environ.get("PYTEST_SDXL_ARTIFACTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("asv-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def suite_benchmark_names(scratch: ScratchRepository) -> set[str]:
    """Every benchmark asv discovered in the suite (module.Class.method), from its benchmarks.json."""
    discovered = json.loads((scratch.root / ".asv" / "results" / "benchmarks.json").read_text(encoding="utf-8"))
    return {name for name in discovered if name != "version"}


def missing_offline_assets() -> list[str]:
    return [path for path in DEBIAN_ASSETS.values() if path is not None and not Path(path).is_file()]


def serve_assets_locally(html: Path) -> None:
    """Point index.html's CDN scripts and styles at local copies (vendor/), drop those not needed."""
    index = html / "index.html"
    vendor = html / "vendor"
    vendor.mkdir(exist_ok=True)

    def local(match: re.Match[str]) -> str:
        tag, url = match.group(1), match.group(2)
        name = url.rsplit("/", 1)[-1]
        if name not in DEBIAN_ASSETS:
            raise AssertionError(f"asv's page loads {url}, which has no local copy here: add it to DEBIAN_ASSETS")
        source = DEBIAN_ASSETS[name]
        if source is None:
            return ""
        shutil.copyfile(source, vendor / name)
        if tag == "link":
            return f'<link rel="stylesheet" href="vendor/{name}">'
        return f'<script src="vendor/{name}" onerror="js_load_failure()"></script>'

    text = REMOTE_TAG.sub(local, index.read_text(encoding="utf-8"))
    assert "https://" not in text.split("</head>")[0], "a remote asset is left in the page's head"
    index.write_text(text, encoding="utf-8")


def test_published_page_lists_the_suite_in_chromium(
    asv_scratch: ScratchRepository,
    runs: dict[str, AsvRun],
    artifacts: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if (shutil.which("chromium") is None and shutil.which("chromium-browser") is None) or missing_offline_assets():
        pytest.skip(f"needs Debian's {DEBIAN_PACKAGES} (.ci/run installs them)")
    with asv_scratch.exclusive():
        publish = asv_scratch.asv("publish", variants=VARIANTS)
        assert publish.returncode == 0, publish.describe()
        html = asv_scratch.root / ".asv" / "html"
        assert (html / "index.html").is_file(), publish.describe()
        serve_assets_locally(html)
        expected = suite_benchmark_names(asv_scratch)
    port = free_port()
    preview = subprocess.Popen(
        [sys.executable, "-m", "asv", "preview", "--port", str(port)],
        cwd=asv_scratch.root,
        env=asv_scratch.environment(VARIANTS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until_served(port, preview)
        url = f"http://127.0.0.1:{port}/"
        page = chromium("--virtual-time-budget=20000", "--dump-dom", url, profile=tmp_path / "profile-dom")
        screenshot = artifacts / "asv-published-page.png"
        shot = chromium(
            "--virtual-time-budget=20000",
            "--hide-scrollbars",
            "--window-size=1400,1000",
            f"--screenshot={screenshot}",
            url,
            profile=tmp_path / "profile-screenshot",
        )
    finally:
        preview.terminate()
        preview.wait(timeout=30)
    assert page.returncode == 0, page.stderr[-3000:]
    listed = set(re.findall(r'class="btn benchmark-container" href="#([^"]+)"', page.stdout))
    assert expected, "asv discovered no benchmark"
    assert expected <= listed, f"missing from the page: {sorted(expected - listed)}"
    assert shot.returncode == 0 and screenshot.is_file() and screenshot.stat().st_size > 10_000, shot.stderr[-3000:]
    with capsys.disabled():
        print(f"\nasv published page screenshot: {screenshot}")
