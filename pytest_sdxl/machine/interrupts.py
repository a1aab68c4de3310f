"""A stop that always stops: SIGINT and SIGTERM remembered, so one swallowed by a finalizer still ends the session.

Python turns SIGINT into ``KeyboardInterrupt`` at whatever bytecode runs next. When that is inside a
``__del__`` (tokenizers and regex objects have them, and the garbage collector runs them at any
time) the exception is "ignored" with a warning and the run goes on as if nothing was pressed. The
latch keeps the default behaviour (``KeyboardInterrupt`` at once) and also remembers the signal, so
the next checkpoint (the end of a test, the start of a run) raises it again.

SIGTERM is what stops a CI job (a cancel, a job's time limit, ``timeout`` at its default, ``docker stop``):
left at its default it kills the process outright, and the results end as a killed run leaves them (marked
"running", the report's summary never written). The latch turns it into ``Terminated``, a
``KeyboardInterrupt``, so every path that keeps what finished on Ctrl-C keeps it on SIGTERM too; only the exit
status differs (143, the shell's 128 + 15, against 130).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C stopped
TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where SIGINT raises ``KeyboardInterrupt``."""


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """The status a command stopped by ``interrupt`` exits with: 143 for SIGTERM, 130 for SIGINT."""
    return TERMINATED if isinstance(interrupt, Terminated) else INTERRUPTED


def stopped_by(status: int) -> KeyboardInterrupt:
    """The interrupt an exit status stands for, ``exit_status`` read back: ``Terminated`` for 143, else SIGINT's."""
    return Terminated() if status == TERMINATED else KeyboardInterrupt()


# Each signal the latch takes, and the handler it takes over from (Python's default for that signal).
DEFAULTS: dict[int, Callable[[int, FrameType | None], Any] | int] = {
    signal.SIGINT: signal.default_int_handler,
    signal.SIGTERM: signal.SIG_DFL,
}


class InterruptLatch:
    """Installed only over Python's default handlers, in the main thread; anything else is left alone."""

    def __init__(self) -> None:
        self.pressed: int | None = None  # the signal that arrived and has not been raised yet
        self.installed: set[int] = set()

    def install(self) -> None:
        self.pressed = None  # a stop that ended an earlier command in this process is spent
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, default in DEFAULTS.items():
            if signum in self.installed or signal.getsignal(signum) is not default:
                continue  # someone chose another handler (a debugger, a worker, a test runner): theirs stands
            signal.signal(signum, self.handle)
            self.installed.add(signum)

    def uninstall(self) -> None:
        for signum in self.installed:
            if signal.getsignal(signum) == self.handle:
                signal.signal(signum, DEFAULTS[signum])
        self.installed.clear()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.pressed = signum
        raise stopped_by(128 + signum)

    def raise_if_pressed(self) -> None:
        """Raise once for a SIGINT or SIGTERM that did not stop the code it landed in."""
        if self.pressed is not None:
            signum, self.pressed = self.pressed, None
            raise stopped_by(128 + signum)


LATCH = InterruptLatch()
