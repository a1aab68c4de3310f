"""Reading JSON documents field by field, each value checked against the type its field needs.

A ``Node`` is one value of a parsed JSON document with its JSON path (``variants[2].runs[0].gen_s[3]``).
The schema's readers (``results.schema``, ``tune.resume``) walk a document through nodes, asking each
for what its field holds (``node["gen_s"].numbers()``); the first value of another type raises
``MalformedDocument`` naming its path, what was expected and what was found, so one error type covers
every depth and no ``KeyError`` or ``TypeError`` escapes from a file a user edited, truncated or
confused with another. Checking while reading keeps one description of each field, the reader's,
instead of a separate schema that could drift from it.

The settings and machine blocks are open dictionaries (other writers add keys); the keys this package
reads back have their types here (``RECORDED_SETTINGS``, ``RECORDED_MACHINE``) and are checked, the
others are kept as they are. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pytest_sdxl.errors import SdxlError

T = TypeVar("T")
NON_FINITE = ("inf", "-inf", "nan")


class MalformedDocument(SdxlError, ValueError):
    """A JSON value is not what its field holds; the message gives its JSON path and what is wrong with it."""

    def __init__(self, where: str, problem: str) -> None:
        self.where, self.problem = where, problem
        super().__init__(f"{where or 'at the top'}: {problem}")


def described(value: Any) -> str:
    """A JSON value as a reader of the message knows it: its JSON type, and a short scalar's value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"a number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Node:
    """One value of a JSON document and its JSON path ("" for the document itself)."""

    value: Any
    where: str = ""

    def fail(self, expected: str) -> MalformedDocument:
        return MalformedDocument(self.where, f"expected {expected}, found {described(self.value)}")

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.where}[{key}]"
        return f"{self.where}.{key}" if self.where else key

    @property
    def is_null(self) -> bool:
        return self.value is None

    def object(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise self.fail("an object")
        return self.value

    def __getitem__(self, key: str) -> Node:
        """A required key of an object."""
        data = self.object()
        if key not in data:
            raise MalformedDocument(self.where, f"missing required key {key!r}")
        return Node(data[key], self.at(key))

    def get(self, key: str, default: Any = None) -> Node:
        """An optional key of an object; ``default`` where it is absent."""
        return Node(self.object().get(key, default), self.at(key))

    def items(self) -> list[Node]:
        if not isinstance(self.value, list):
            raise self.fail("a list")
        return [Node(item, self.at(index)) for index, item in enumerate(self.value)]

    def entries(self) -> list[tuple[str, Node]]:
        return [(key, Node(value, self.at(key))) for key, value in self.object().items()]

    def number(self) -> float:
        """A JSON number, or one of the strings the schema writes non-finite floats as ("inf", "-inf", "nan")."""
        if isinstance(self.value, str) and self.value in NON_FINITE:
            return float(self.value)
        if not is_number(self.value):
            raise self.fail("a number")
        try:
            return float(self.value)
        except OverflowError:
            raise self.fail("a number within the range of a float") from None

    def optional_number(self) -> float | None:
        return None if self.value is None else self.number()

    def integer(self) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail("an integer")
        return self.value

    def text(self) -> str:
        if not isinstance(self.value, str):
            raise self.fail("a string")
        return self.value

    def choice(self, accepted: tuple[str, ...]) -> str:
        if self.value not in accepted:
            raise self.fail("one of " + ", ".join(repr(item) for item in accepted))
        return str(self.value)

    def numbers(self) -> list[float]:
        return [item.number() for item in self.items()]

    def texts(self) -> list[str]:
        if not isinstance(self.value, list):
            raise self.fail("a list of strings")
        return [item.text() for item in self.items()]

    def number_map(self) -> dict[str, float]:
        return {key: item.number() for key, item in self.entries()}

    def pair(self, expected: str) -> list[float]:
        """A list of exactly two numbers; ``expected`` names them for the message ("[launches, microseconds]")."""
        if not isinstance(self.value, list) or len(self.value) != 2:
            raise self.fail(f"a pair {expected}")
        return self.numbers()

    def read(self, reader: Callable[[Any], T], expected: str) -> T:
        """A value read by another module's reader: whatever it raises on a bad value becomes this module's error."""
        try:
            return reader(self.value)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError, OverflowError):
            raise self.fail(expected) from None


# What a value of a recorded settings or machine key must be, by the name of the check.
Kind = Callable[[Node], Any]


def nullable(kind: Kind) -> Kind:
    return lambda node: None if node.is_null else kind(node)


TEXT: Kind = Node.text
INTEGER: Kind = Node.integer
NUMBER: Kind = Node.number
TEXTS: Kind = Node.texts

# The keys of results.json's settings the package reads back, and what each holds (None where not set).
RECORDED_SETTINGS: Mapping[str, Kind] = {
    "model": TEXT,
    "device": TEXT,
    "dtype": TEXT,
    "size": nullable(INTEGER),
    "steps": INTEGER,
    "prompts": TEXTS,
    "runs": INTEGER,
    "variants": nullable(TEXTS),
    "report": nullable(TEXT),
    "trace": nullable(TEXT),
    "seed": INTEGER,
    "tiny_vae": TEXT,
    "fp16_vae": TEXT,
    "compile_cache": nullable(TEXT),
    "image_size": nullable(INTEGER),
    "resolved_device": TEXT,
    "resolved_dtype": TEXT,
    "harness": TEXT,
    "merged_from": TEXTS,
    "pooled_from": TEXTS,
    "resumed_from": TEXT,
    "session_budget": nullable(NUMBER),
    "session_elapsed_s": NUMBER,
    "session_overrun_s": NUMBER,
}
# The keys of results.json's machine block the reports and the compatibility checks read.
MACHINE_TEXTS = ("hostname", "platform", "cpu", "python", "torch", "diffusers", "transformers", "accelerate")
RECORDED_MACHINE: Mapping[str, Kind] = {
    **{key: nullable(TEXT) for key in (*MACHINE_TEXTS, "pytest_sdxl", "gpu", "cuda", "gpu_driver", "driver")},
    "cpu_count": nullable(INTEGER),
    "gpu_count": nullable(INTEGER),
    "gpu_memory_gb": nullable(NUMBER),
}


def open_block(node: Node, known: Mapping[str, Kind]) -> dict[str, Any]:
    """An object whose ``known`` keys are checked and read (non-finite numbers decoded); other keys kept as they are."""
    block = dict(node.object())
    for key, kind in known.items():
        if key in block:
            block[key] = kind(node[key])
    return block


def read_json_file(source: Path, named: str, error: Callable[[str], Exception]) -> Any:
    """The parsed JSON of a file; ``error(message)`` (the caller's error type) where it cannot be read or parsed.

    ``named`` names the file in the message ("results file 'x.json'").
    """
    try:
        text = source.read_bytes().decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"{named} is not UTF-8 text, so not JSON: {problem}") from None
    except OSError as problem:
        raise error(f"{named} cannot be read: {problem.strerror or problem}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{named} is not JSON that can be read: nested too deeply") from None
    except ValueError as problem:  # json.JSONDecodeError among them
        raise error(f"{named} is not JSON: {problem}") from None
