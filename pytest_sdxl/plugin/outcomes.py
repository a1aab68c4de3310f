"""How a variant that cannot run, or fails, ends a pytest test: skipped with its reason, or failed in one line.

Shared by the fixtures (building and warming) and the benchmark runner (timing), so both record
the outcome for the session's tables the same way and free the failed variant's GPU memory first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_sdxl.machine.devices import release_after_failure

if TYPE_CHECKING:
    from pytest_sdxl.plugin.state import SessionState
    from pytest_sdxl.variants.registry import Composition


def skip_variant(state: SessionState, composition: Composition, reason: str) -> NoReturn:
    """Skip a variant that cannot run here; the session's tables say why."""
    state.record_outcome(composition.id, composition.kind, "skipped", reason)
    pytest.skip(reason)


def fail_variant(error: BaseException, variant: str, doing: str, device: Any) -> NoReturn:
    """Free what the failure holds, then fail with one line for an expected failure, the full error otherwise."""
    from pytest_sdxl.errors import ImageCheckError
    from pytest_sdxl.measure.records import failure_reason

    release_after_failure(error, device)
    if not isinstance(error, Exception):  # an interrupt: the memory is freed, the interrupt goes on
        raise error
    if isinstance(error, ImageCheckError) or failure_reason(error).startswith("out of memory"):
        # One line says it all; the original error's own traceback would only repeat it.
        raise pytest.fail.Exception(f"{variant} failed {doing}: {failure_reason(error)}", pytrace=False) from None
    raise error
