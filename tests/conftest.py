"""Test-suite configuration: pytester for the plugin's end-to-end tests, and shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from scratch_repository import ScratchRepository

    from pytest_sdxl.pipelines.sources import Components

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def not_an_xdist_worker_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions a test starts (pytester, subprocesses) are not xdist workers, even when this test run is one.

    pytest-benchmark turns itself off in any session that sees ``PYTEST_XDIST_WORKER`` in the environment,
    and an xdist worker of this run leaves it there for every child it starts.
    """
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_in_every_test() -> Iterator[None]:
    """One torch thread for the whole session, every xdist worker included.

    Two workers on two cores, each with torch's default of a thread a core, oversubscribe the machine:
    a generation test in a module without ``one_torch_thread`` ran several times slower (one
    host-normalized ratio test of the asv suite took 70 s with two threads, 2 s with one). A test
    that checks the thread default sets the count it needs itself.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    """A prompt file of two: the fewest the protocol takes, its first generation's and one timed."""
    path = tmp_path / "prompts.txt"
    path.write_text("a red cube\na blue sphere\n")
    return path


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread: on a busy two-core machine more threads make a 64x64 image several times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def components() -> Components:
    """The tiny model's components on the CPU in float32, built afresh for each module that asks."""
    import torch

    from pytest_sdxl.pipelines.sources import load_components

    return load_components("random:tiny", torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def model_code_imported(one_torch_thread: None) -> None:
    """Import and run the model and report code once, so in-process (pytester) child sessions find it loaded.

    pytester forgets the modules a child session imports; importing them here first keeps them.
    """
    from pytest_sdxl import settings
    from pytest_sdxl.pipelines import sources
    from pytest_sdxl.reports import chart as plot  # noqa: F401
    from pytest_sdxl.reports import tables as reports  # noqa: F401
    from pytest_sdxl.variants import assembly
    from pytest_sdxl.variants import registry as variants

    components = sources.components_for(settings.resolve({}, {}, {}))
    pipeline = assembly.VariantPipeline(components, variants.compose([]), 32)
    pipeline.generate(["warm"], [0])
    pipeline.close()


@pytest.fixture(scope="session")
def asv_scratch(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ScratchRepository:
    """The asv tests' scratch repository (tests/scratch_repository.py): one for the whole run, xdist workers included.

    An xdist worker's temporary folder is one of several inside the run's own; the repository goes
    in that common parent, so every worker of the run finds the one the first worker made.
    """
    from scratch_repository import shared_repository

    base = tmp_path_factory.getbasetemp()
    on_a_worker = hasattr(request.config, "workerinput")
    return shared_repository((base.parent if on_a_worker else base) / "asv-scratch")
