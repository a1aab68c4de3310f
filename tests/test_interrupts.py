"""The interrupt latch: a SIGINT that a finalizer swallows still stops the work at the next checkpoint, and SIGTERM
stops it as SIGINT does, told apart by the exit status."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from pytest_sdxl.machine.interrupts import INTERRUPTED, TERMINATED, InterruptLatch, Terminated, exit_status


@pytest.fixture
def latch() -> Iterator[InterruptLatch]:
    previous = {signal.SIGINT: signal.getsignal(signal.SIGINT), signal.SIGTERM: signal.getsignal(signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    latch = InterruptLatch()
    latch.install()
    # Without the latch a SIGTERM below would end this test run: check it took the signal first.
    assert latch.installed == {signal.SIGINT, signal.SIGTERM}
    yield latch
    latch.uninstall()
    for signum, handler in previous.items():
        signal.signal(signum, handler)


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


@pytest.mark.parametrize("taken", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_another_handler_is_left_alone(taken: signal.Signals) -> None:
    def chosen(signum: int, frame: object) -> None:
        pass

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(taken, chosen)
    latch = InterruptLatch()
    try:
        latch.install()
        assert taken not in latch.installed and signal.getsignal(taken) is chosen
        latch.uninstall()
        assert signal.getsignal(taken) is chosen
        assert signal.getsignal(signal.SIGINT if taken == signal.SIGTERM else signal.SIGTERM) in (
            signal.default_int_handler,
            signal.SIG_DFL,
        ), "uninstalling gives back the default it took over"
    finally:
        latch.uninstall()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_installing_again_forgets_a_press_an_earlier_command_ended_on(latch: InterruptLatch) -> None:
    latch.pressed = signal.SIGTERM
    latch.uninstall()
    latch.install()
    latch.raise_if_pressed()


def test_sigterm_raises_terminated_which_every_keyboard_interrupt_handler_catches(latch: InterruptLatch) -> None:
    with pytest.raises(Terminated) as stopped:
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))
    assert isinstance(stopped.value, KeyboardInterrupt)
    assert exit_status(stopped.value) == TERMINATED == 128 + signal.SIGTERM
    assert exit_status(KeyboardInterrupt()) == INTERRUPTED == 128 + signal.SIGINT


class SwallowsTermination:
    """SIGTERM delivered while its finalizer runs: swallowed as SIGINT is, and latched as SIGTERM."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_swallowed_sigterm_is_raised_at_the_next_checkpoint_as_terminated(latch: InterruptLatch) -> None:
    SwallowsTermination()
    with pytest.raises(Terminated):
        latch.raise_if_pressed()
    latch.raise_if_pressed()


def test_uninstall_gives_back_the_defaults(latch: InterruptLatch) -> None:
    latch.uninstall()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
