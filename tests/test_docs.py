"""README and the user guide: the guide builds with ``mkdocs build --strict``, README stays short and keeps
the commands CI reads from it, and neither names the write-up the project started from as "the notes"."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 150
TEST_COMMAND = "python -m pytest -q -p no:cacheprovider -n 2 --dist worksteal"
MAIN_JOB = (
    'python -m pip install torch==2.13.0 && python -m pip install -e ".[test]" && '
    "python -m pytest --pyargs pytest_sdxl.suite --benchmark-only"
)
# The raw records of measurements (docs/results/<dated folder>/, measurement/, state-of-the-art/) keep the
# wording of their day; everything else the guide says is held to the plain names.
RAW_RECORDS = re.compile(r"results/[^/]+/")


def guide_pages() -> list[Path]:
    return [path for path in sorted(DOCS.rglob("*.md")) if not RAW_RECORDS.match(path.relative_to(DOCS).as_posix())]


def test_readme_is_at_most_150_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the limit is {README_MAX_LINES}"


def test_readme_keeps_the_test_command_where_ci_reads_it() -> None:
    """.ci/run takes the third line from the marker: the marker, the fence, then the command."""
    lines = README.read_text(encoding="utf-8").splitlines()
    marker = lines.index("<!-- test-command -->")
    assert lines[marker + 1] == "```bash"
    assert lines[marker + 2] == TEST_COMMAND
    assert lines[marker + 3] == "```"


def test_readme_keeps_the_main_job_command() -> None:
    assert MAIN_JOB in README.read_text(encoding="utf-8").splitlines()


def test_neither_readme_nor_the_guide_says_the_notes() -> None:
    pages = [README, ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *guide_pages()]
    assert len(pages) > 10, "the guide's pages were not found"
    offending = [
        f"{page.relative_to(ROOT)}:{number}"
        for page in pages
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1)
        if "the notes" in line.lower()
    ]
    assert not offending, "say 'the reference protocol' or 'the write-up', not 'the notes': " + ", ".join(offending)


def test_the_readme_example_collects_a_test_per_variant(pytester: pytest.Pytester) -> None:
    """The plugin example in README names real fixtures and a marker the plugin accepts."""
    example = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert example is not None, "README has no python example"
    pytester.makepyfile(test_readme_example=example.group(1))
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    result.assert_outcomes()
    result.stdout.fnmatch_lines(
        [
            "*test_generation_speed[[]baseline[]]",
            "*test_generation_speed[[]tiny_vae[]]",
            "*test_generation_speed[[]tiny_vae+batch[]]",
            "*test_images_are_in_range[[]tiny_vae+batch[]]",
        ]
    )
    assert result.ret == 0


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (the docs extra)")
def test_the_guide_builds_strictly_with_the_generated_tables(tmp_path: Path) -> None:
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    # The placeholders were replaced by tables built from the code, and mkdocstrings rendered the API.
    left = [page.parent.name for page in site.rglob("index.html") if "<!-- generated:" in page.read_text("utf-8")]
    assert not left, f"placeholders left unreplaced in {left}"
    compare = (site / "compare" / "index.html").read_text(encoding="utf-8")
    assert "<code>kernel_ms</code>" in compare
    variants = (site / "variants" / "index.html").read_text(encoding="utf-8")
    assert "<code>graph_pipeline</code>" in variants and "unmet_requirements" in variants
    plugin = (site / "plugin" / "index.html").read_text(encoding="utf-8")
    assert "<code>PYTEST_SDXL_MODEL</code>" in plugin and "pytest_sdxl_variants" in plugin
    assert "sdxl_benchmark" in plugin
    # The raw records are built and reachable from the Results page.
    assert (site / "results" / "2026-11-27g" / "index.html").is_file()
