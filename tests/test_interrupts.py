"""The interrupt latch: a SIGINT that a finalizer swallows still stops the work at the next checkpoint."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from pytest_sdxl.machine.interrupts import InterruptLatch


@pytest.fixture
def latch() -> Iterator[InterruptLatch]:
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    latch = InterruptLatch()
    latch.install()
    yield latch
    latch.uninstall()
    signal.signal(signal.SIGINT, previous)


class SwallowsInterrupts:
    """SIGINT delivered while its finalizer runs: Python reports the KeyboardInterrupt as unraisable and goes on."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))  # bytecode after the kill, where the handler runs


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_swallowed_by_a_finalizer_is_raised_at_the_next_checkpoint(latch: InterruptLatch) -> None:
    SwallowsInterrupts()  # dropped at once: its __del__ runs here, and the interrupt does not propagate
    with pytest.raises(KeyboardInterrupt):
        latch.raise_if_pressed()
    latch.raise_if_pressed()  # raised once: a checkpoint after that goes on


def test_an_ordinary_interrupt_still_raises_at_once(latch: InterruptLatch) -> None:
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))


def test_another_handler_is_left_alone() -> None:
    def chosen(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGINT, chosen)
    try:
        latch = InterruptLatch()
        latch.install()
        assert not latch.installed and signal.getsignal(signal.SIGINT) is chosen
    finally:
        signal.signal(signal.SIGINT, previous)


def test_installing_again_forgets_a_press_an_earlier_command_ended_on(latch: InterruptLatch) -> None:
    latch.pressed = True
    latch.uninstall()
    latch.install()
    latch.raise_if_pressed()
