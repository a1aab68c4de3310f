"""The identity of the operating-system process that measures: the unit ``compare`` treats as a sample.

Two processes of the same code on the same machine run at levels of their own (address layout, hash seed,
where the allocator placed things, which cores they got): one can be 5-10 % faster than the next for as
long as it lives. Each run records which process measured it, so that a comparison can tell the runs of one
process (which share its level) from those of several. The id is random (uuid4), made once per process, so
that no two processes share one, on any machine, at any time; a pid would repeat. A child made by
``os.fork`` is a process of its own and gets a new id. Standard library only.
"""

from __future__ import annotations

import os
import uuid

# (pid, id) of the process that made the id: a forked child inherits the pair and sees another pid.
_made_for: tuple[int, str] | None = None


def process_id() -> str:
    """This process's id: 32 hexadecimal digits, the same on every call within the process."""
    global _made_for
    pid = os.getpid()
    if _made_for is None or _made_for[0] != pid:
        _made_for = (pid, uuid.uuid4().hex)
    return _made_for[1]
