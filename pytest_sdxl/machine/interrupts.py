"""A Ctrl-C that always stops: SIGINT remembered, so one swallowed by a finalizer still ends the session.

Python turns SIGINT into ``KeyboardInterrupt`` at whatever bytecode runs next. When that is inside a
``__del__`` (tokenizers and regex objects have them, and the garbage collector runs them at any
time) the exception is "ignored" with a warning and the run goes on as if nothing was pressed. The
latch keeps the default behaviour (``KeyboardInterrupt`` at once) and also remembers the signal, so
the next checkpoint (the end of a test, the start of a run) raises it again.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class InterruptLatch:
    """Installed only over Python's default SIGINT handler, in the main thread; anything else is left alone."""

    def __init__(self) -> None:
        self.pressed = False
        self.installed = False

    def install(self) -> None:
        self.pressed = False  # a press that ended an earlier command in this process is spent
        if self.installed or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return  # someone chose another handler (a debugger, a worker): theirs stands
        signal.signal(signal.SIGINT, self.handle)
        self.installed = True

    def uninstall(self) -> None:
        if self.installed and signal.getsignal(signal.SIGINT) == self.handle:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self.installed = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def raise_if_pressed(self) -> None:
        """Raise ``KeyboardInterrupt`` once for a SIGINT that did not stop the code it landed in."""
        if self.pressed:
            self.pressed = False
            raise KeyboardInterrupt


LATCH = InterruptLatch()
