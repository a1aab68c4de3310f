"""Session ids: which measuring sessions' records a results document holds, so that none is joined twice.

A session (one ``run``, one pytest session) gives its results a random id when it starts; a merge lists
the ids of every session it joins. Pooling the runs of one session twice would count them as twice as
many independent runs and fake a significant difference, so ``results.merge`` refuses any id seen twice.
A file written before session ids gets one derived from its content (when, what and where it measured),
so that the same file given twice is still caught; the id says it was derived and keeps saying so once
the file is written again. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence

from pytest_sdxl.results.validation import Node

DERIVED_PREFIX = "derived-"
# What a derived id is made of: two sessions differ in at least one of them.
DERIVED_FROM = ("created", "settings", "machine")


def new_session_id() -> str:
    """A measuring session's id: random (uuid4), so sessions on any machine never share one."""
    return str(uuid.uuid4())


def session_ids_from_node(root: Node) -> list[str]:
    """A results document's session ids; for a file written before them, one derived from its content."""
    if "session_ids" in root.object():
        ids = root["session_ids"].texts()
        if not ids:
            raise root["session_ids"].fail("a list of one session id or more")
        return ids
    identity = {key: root.object().get(key) for key in DERIVED_FROM}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    return [f"{DERIVED_PREFIX}{digest[:32]}"]


def described(session_id: str) -> str:
    if session_id.startswith(DERIVED_PREFIX):
        return (
            f"session {session_id} (derived from the file's creation time, settings and machine: "
            "it was written before session ids)"
        )
    return f"session {session_id}"


def joined_ids(ids: Sequence[Sequence[str]]) -> list[str]:
    """Every session id of several documents, once each, in order."""
    return list(dict.fromkeys(session_id for group in ids for session_id in group))


def repeated_sessions(named: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """One line per session id held by more than one of the named documents, naming them."""
    holders: dict[str, list[str]] = {}
    for name, ids in named:
        for session_id in dict.fromkeys(ids):
            holders.setdefault(session_id, []).append(name)
    return [
        f"{described(session_id)} is in {' and '.join(names)}"
        for session_id, names in holders.items()
        if len(names) > 1
    ]
