"""A report folder's results.json, the one place it is written: under a lock, merged with what is on disk, atomically.

Several sessions may write one folder at once: lanes of a matrix started together with ``run --resume``,
a ``run`` beside a pytest session. Each save takes the folder's lock (``results.json.lock``, the
``filelock`` package), reads the file and keeps what other sessions wrote since this one started, so no
session drops another's variants; the file is then replaced atomically (``schema.write_atomically``).

A session announces itself while it writes (``Writer``: its id, command, process, workload and the
variants it measures) in ``.results.json.writers/``, holding a lock of its own that the system releases
when the process ends, however it ends. A session that starts while another is live is refused before
it measures anything where the two would spoil each other's results:

- the same variant in both: two processes measuring one variant at once time each other's load, and
  pooling such runs would count disturbed runs as independent ones (``merge --pool-runs`` joins
  separate sessions' files on purpose instead);
- another workload, card or software (``results.compatibility``): one file holds one workload's figures.

Variants of different sessions with the same workload are merged. A plain ``run`` replaces a file
left by sessions that have ended, as it always did (``run --resume`` keeps it); a live session's
variants are never replaced.

A save that cannot take the lock (held past ``LOCK_TIMEOUT_S``: a stuck writer, a ``flock`` on it) writes nothing
there and raises ``ReportFolderLocked``; what it would have written is kept in a file of its own (``keep_unsaved``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from pytest_sdxl.errors import ResultsWriteError, SdxlError
from pytest_sdxl.results.compatibility import MERGE, RESUME, mismatch_lines
from pytest_sdxl.results.records import VariantRecord
from pytest_sdxl.results.schema import (
    RESULTS_FILE,
    DerivedBlocks,
    ResultSet,
    ResultsFileError,
    load_results,
    save_results,
    to_dict,
    write_atomically,
)
from pytest_sdxl.results.sessions import new_session_id

LOCK_NAME = RESULTS_FILE + ".lock"
WRITERS_FOLDER = ".results.json.writers"
# A save holds the lock for a read, a merge and a write (and the markdown and chart with them): well
# under a second. Longer than this means a writer is stuck (a hung network file system, say).
LOCK_TIMEOUT_S = 120.0
# A wait this long is no healthy writer's: said in one line, so that a session that seems to hang says why. Once a
# wait ran out, the holder is taken to be stuck: the session's later waits (an interrupt's save, its close) are short.
NOTICE_AFTER_S = AFTER_GIVING_UP_S = 5.0
# What two sessions writing one file must share: what ``run --resume`` checks before measuring (the size as
# requested: the resolved one is known only once the model is loaded), then what ``merge`` checks once
# known; the harness among them (the plugin's and the command line's runs never share a file).
BEFORE_MEASURING = RESUME
ONCE_MEASURED = MERGE


class ReportFolderConflict(SdxlError):
    """Another session writing the same report folder would spoil this one's results, or this one theirs."""


class ReportFolderLocked(ResultsWriteError):
    """The folder's lock stayed held past the wait: nothing written there (a failed write, not a usage error).
    ``rescue``: the file holding what the save would have written; ``kept``: where that is, or why nowhere."""

    def __init__(self, folder: Path, why: str) -> None:
        super().__init__(why)
        self.folder, self.why, self.kept = folder, why, ""
        self.rescue: Path | None = None

    def __str__(self) -> str:
        return "; ".join(filter(None, [f"report folder {self.folder}: {self.why}", self.kept]))


@dataclasses.dataclass(frozen=True)
class Writer:
    """What a session writing a report folder tells the others: who it is and what it measures."""

    command: str
    settings: dict[str, Any]
    machine: dict[str, Any]
    # The variants it measures, and those it carries over from the folder's earlier results (--resume).
    measures: tuple[str, ...]
    carries: tuple[str, ...] = ()
    session: str = dataclasses.field(default_factory=new_session_id)
    pid: int = dataclasses.field(default_factory=os.getpid)
    host: str = dataclasses.field(default_factory=socket.gethostname)
    started: str = dataclasses.field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def holds(self) -> set[str]:
        return set(self.measures) | set(self.carries)

    def describe(self) -> str:
        return f"session {self.session} ({self.command}, pid {self.pid} on {self.host}, since {self.started})"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Writer:
        return cls(
            command=str(data["command"]),
            settings=dict(data["settings"]),
            machine=dict(data["machine"]),
            measures=tuple(str(item) for item in data["measures"]),
            carries=tuple(str(item) for item in data.get("carries", ())),
            session=str(data["session"]),
            pid=int(data["pid"]),
            host=str(data["host"]),
            started=str(data["started"]),
        )


def conflict_with(mine: Writer, other: Writer) -> str:
    """Why ``mine`` must not write beside the live ``other`` ("" when they may share the file)."""
    both = sorted(set(mine.measures) & other.holds | mine.holds & set(other.measures))
    if both:
        return (
            f"both would write {', '.join(both)}, and two sessions measuring one variant at once time each other "
            "(leave it out of this session, or measure it into another folder and join both with `pytest-sdxl merge`)"
        )
    found = mismatch_lines(
        [
            (other.describe(), ResultSet(settings=other.settings, machine=other.machine)),
            ("this session", ResultSet(settings=mine.settings, machine=mine.machine)),
        ],
        BEFORE_MEASURING,
    )
    if found:
        return "it measures something else, and one file holds one workload's figures (its vs this session's): " + (
            "; ".join(found)
        )
    return ""


def canonical(record: VariantRecord) -> str:
    """A record as its JSON text: equal texts are the same record (NaN included, unlike the dataclasses)."""
    return json.dumps(to_dict(ResultSet(variants=[record]))["variants"][0], sort_keys=True)


class ReportFolder:
    """One session's writes to a report folder: ``open`` (refused on a conflict), ``save`` after every run, ``close``.

    ``replace``: a plain ``run`` or pytest session, which replaces what ended sessions left in the file;
    ``run --resume`` carries that over itself (``Writer.carries``) and passes False.
    """

    def __init__(self, folder: Path, writer: Writer, replace: bool = True) -> None:
        self.folder = Path(folder)
        self.writer = writer
        self.replace = replace
        self.path = self.folder / RESULTS_FILE
        self.lock = FileLock(self.folder / LOCK_NAME, timeout=LOCK_TIMEOUT_S)
        self.gave_up = False  # a wait for the lock ran out (or was stopped): later ones are short (AFTER_GIVING_UP_S)
        self.rescued: Path | None = None  # this session's rescue file, removed once a save gets through again
        self.presence: FileLock | None = None
        # What ended sessions left in the file when this one started, by variant: replaced if still there as it was.
        self.stale: dict[str, str] = {}
        self.stale_not_measured: set[str] = set()
        self.own_session_ids: set[str] = {writer.session}

    @property
    def writers(self) -> Path:
        return self.folder / WRITERS_FOLDER

    def __enter__(self) -> ReportFolder:
        self.open()
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def open(self) -> None:
        """Announce this session; ReportFolderConflict, before anything is measured, if it clashes with a live one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.locked():
            live = self.live_writers()
            for other in live:
                reason = conflict_with(self.writer, other)
                if reason:
                    raise ReportFolderConflict(
                        f"report folder {self.folder} is being written by another session, {other.describe()}: "
                        f"{reason}; wait for it to end or give another report folder"
                    )
            self.writers.mkdir(exist_ok=True)
            presence = FileLock(self.writers / f"{self.writer.session}.lock")
            presence.acquire(timeout=0)
            self.presence = presence
            write_atomically(self.writers / f"{self.writer.session}.json", json.dumps(self.writer.as_dict()))
            if self.replace:
                self.remember_stale(live)

    def remember_stale(self, live: Sequence[Writer]) -> None:
        """What ended sessions left, replaced by a plain session: all but what a live one holds (it may carry it)."""
        earlier = self.read()
        if earlier is None:
            return
        held = set().union(*(other.holds for other in live))
        self.stale = {record.variant: canonical(record) for record in earlier.variants if record.variant not in held}
        # A live session's unreached variants are its own to report.
        self.stale_not_measured = set(earlier.not_measured) if not live else set()

    def close(self) -> None:
        """Withdraw this session's announcement (the system releases its lock anyway if the process dies)."""
        presence, self.presence = self.presence, None
        if presence is None:
            return
        try:
            with self.locked():
                forget(self.writers, self.writer.session, presence)
        except ReportFolderLocked:
            # Its presence lock released, the announcement reads as an ended session's: the next writer forgets it.
            presence.release()

    def save(
        self,
        result_set: ResultSet,
        derived: DerivedBlocks | None = None,
        then: Callable[[ResultSet], object] | None = None,
    ) -> ResultSet:
        """Merge this session's results with what others wrote since it started, write them; returns what was written.

        ``then`` gets the written set while the lock is still held (the markdown and chart, so that they
        show the same variants as results.json).
        """
        if self.presence is None:
            self.open()
        self.own_session_ids.update(result_set.session_ids)
        try:
            with self.locked():
                merged = self.merged(self.read(), result_set)
                save_results(merged, self.path, derived)
                if then is not None:
                    then(merged)
        except ReportFolderLocked as error:
            self.keep_unsaved(error, result_set, derived)
            raise
        if self.rescued is not None:  # results.json now holds all it held, and more: left there, it would mislead
            self.rescued.unlink(missing_ok=True)
            self.rescued = None
        return merged

    def keep_unsaved(self, error: ReportFolderLocked, result_set: ResultSet, derived: DerivedBlocks | None) -> None:
        """What a save that could not take the lock would have written, in a file named by this session's id (none
        collide): in the folder, else in the temporary folder; ``error`` says where, or why nowhere."""
        try:
            # Read without the lock: the file is replaced atomically, so this is one whole version of it.
            unsaved = self.merged(self.read(), result_set)
        except (OSError, SdxlError):
            unsaved = result_set  # this session's results at least
        failures = []
        for folder in (self.folder, Path(tempfile.gettempdir())):
            try:
                path = save_results(unsaved, folder / f"{RESULTS_FILE}.{self.writer.session}.unsaved.json", derived)
            except (OSError, ValueError) as failure:
                failures.append(f"{folder}: {getattr(failure, 'strerror', None) or failure}")
                continue
            error.rescue = self.rescued = path
            error.kept = f"what it would have written is in {path}: move that over {RESULTS_FILE} once the lock is free"
            return
        error.kept = f"no other file could keep what it would have written ({'; '.join(failures)})"

    def merged(self, on_disk: ResultSet | None, mine: ResultSet) -> ResultSet:
        if on_disk is None:
            return mine
        ours = {record.variant for record in mine.variants}
        kept = [
            record
            for record in on_disk.variants
            if record.variant not in ours and self.stale.get(record.variant) != canonical(record)
        ]
        present = ours | {record.variant for record in kept}
        carried = [name for name in on_disk.not_measured if name not in self.stale_not_measured]
        not_measured = [name for name in dict.fromkeys([*mine.not_measured, *carried]) if name not in present]
        if not kept and not_measured == mine.not_measured:
            return mine
        if kept:
            self.refuse_other_workloads(on_disk, mine)
        variants = sorted([*mine.variants, *kept], key=lambda record: record.variant != "baseline")
        settings = dict(mine.settings)
        if settings.get("variants") is not None:
            settings["variants"] = [record.variant for record in variants]
        others = [session for session in on_disk.session_ids if session not in self.own_session_ids] if kept else []
        partial = mine.partial or on_disk.partial or "running"
        return dataclasses.replace(
            mine,
            settings=settings,
            variants=variants,
            not_measured=not_measured,
            partial=partial if not_measured or any(record.partial for record in variants) else "",
            session_ids=list(dict.fromkeys([*mine.session_ids, *others])),
        )

    def refuse_other_workloads(self, on_disk: ResultSet, mine: ResultSet) -> None:
        """The open check's safety net: records of another workload are never mixed into this session's file."""
        found = mismatch_lines([(str(self.path), on_disk), ("this session", mine)], ONCE_MEASURED)
        if found:
            raise ReportFolderConflict(
                f"{self.path} holds another session's results of something else, and one file holds one "
                f"workload's figures: {'; '.join(found)}; give another report folder"
            )

    def read(self) -> ResultSet | None:
        """The file as it is now; None where there is none, or where a plain session replaces one it cannot read."""
        if not self.path.exists():
            return None
        try:
            return load_results(self.path)
        except ResultsFileError:
            if self.replace:
                return None  # not results (or of an older tool): a plain session writes its own, as it always did
            raise

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The folder's lock held while the block runs; ReportFolderLocked where it stays held past the wait."""
        self.acquire(AFTER_GIVING_UP_S if self.gave_up else LOCK_TIMEOUT_S)
        try:
            yield
        finally:
            self.lock.release()

    def acquire(self, limit_s: float) -> None:
        """The folder's lock within ``limit_s``, one line said once the wait passes NOTICE_AFTER_S."""
        try:
            try:
                self.lock.acquire(timeout=min(limit_s, NOTICE_AFTER_S))
            except Timeout:
                if limit_s <= NOTICE_AFTER_S:
                    raise
                start = "\n" if sys.stderr.isatty() else ""  # below a progress line still being drawn, not on it
                print(
                    f"{start}pytest-sdxl: report folder {self.folder}: waiting for its lock {self.folder / LOCK_NAME}, "
                    f"{self.holder_said()}; giving up after {limit_s:g} s",
                    file=sys.stderr,
                    flush=True,
                )
                self.lock.acquire(timeout=limit_s - NOTICE_AFTER_S)
        except Timeout:
            self.gave_up = True
            why = f"waited {limit_s:g} s for its lock {self.folder / LOCK_NAME}, {self.holder_said()}"
            raise ReportFolderLocked(self.folder, why) from None
        except KeyboardInterrupt:
            # Stopped (maybe while waiting): the interrupt's save then waits briefly, not LOCK_TIMEOUT_S unstoppable.
            self.gave_up = True
            raise
        self.gave_up = False

    def holder_said(self) -> str:
        """Who holds the lock, as far as can be told: a lock names no holder, but live writers announce themselves."""
        if others := self.live_writers(forget_ended=False):
            return "held by a writer of the folder (live now: " + "; ".join(other.describe() for other in others) + ")"
        return "held by no live pytest-sdxl session of this folder (a `flock` on it, a hung process?) or never freed"

    def live_writers(self, forget_ended: bool = True) -> list[Writer]:
        """The sessions writing this folder now; those that ended (their lock free) are forgotten on the way with
        ``forget_ended`` (only under the folder's lock)."""
        if not self.writers.is_dir():
            return []
        live = []
        for announcement in sorted(self.writers.glob("*.json")):
            session = announcement.stem
            if session == self.writer.session:
                continue
            probe = FileLock(self.writers / f"{session}.lock")
            try:
                probe.acquire(timeout=0)
            except Timeout:
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    live.append(Writer.from_dict(json.loads(announcement.read_text(encoding="utf-8"))))
                continue
            if forget_ended:
                forget(self.writers, session, probe)
            else:
                probe.release()
        return live


def forget(writers: Path, session: str, held: FileLock) -> None:
    """Remove a session's announcement and lock file (``held``: its lock, taken by the caller)."""
    (writers / f"{session}.json").unlink(missing_ok=True)
    held.release()
    (writers / f"{session}.lock").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        writers.rmdir()  # only when empty: another session may be writing
