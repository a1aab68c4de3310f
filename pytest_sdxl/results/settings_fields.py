"""The settings a results document records, as the results layer sees them: a Protocol of their fields.

``pytest_sdxl.settings.Settings`` has every one of them. The results layer sits below the settings
(which validate variant names against the registry), so it types them by what it reads instead of
importing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pytest_sdxl.variants.registry import Composition


class RecordedSettings(Protocol):
    """What ``results.schema.settings_as_dict`` reads of ``pytest_sdxl.settings.Settings``."""

    @property
    def model(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def size(self) -> int | None: ...
    @property
    def steps(self) -> int: ...
    @property
    def prompts(self) -> Sequence[str]: ...
    @property
    def runs(self) -> int: ...
    @property
    def variants(self) -> Sequence[Composition] | None: ...
    @property
    def report(self) -> Path | None: ...
    @property
    def trace(self) -> Path | None: ...
    @property
    def seed(self) -> int: ...
    @property
    def tiny_vae(self) -> str: ...
    @property
    def fp16_vae(self) -> str: ...
    @property
    def compile_cache(self) -> Path | None: ...
