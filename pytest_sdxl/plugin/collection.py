"""Which variants each sdxl test runs, and in which order: the plugin's collection-time rules.

A test's variants come from its ``sdxl_variants`` marker, restricted to what ``--sdxl-variants``
selects; the tests of one variant are then put together, baseline first, so each pipeline is built
once a session. Standard library, pytest and the variant registry only (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

from pytest_sdxl.errors import VariantSpecError

if TYPE_CHECKING:
    from pytest_sdxl.variants.registry import Composition

# The registry (every built-in variant) is imported by the functions that need it, not here: loading
# the plugin in a session that never uses it must stay cheap.


def variants_for(
    marker: pytest.Mark | None, selected: tuple[Composition, ...] | None, where: str, default: Sequence[Composition]
) -> list[Composition]:
    """The test's variants: its marker's (restricted to the selection), else the selection, else ``default``.

    ``default`` is ``Settings.default_variants``' choice for this device (auto or all); a marker names its
    variants itself, so it is restricted by named variants only.
    """
    from pytest_sdxl.variants.registry import parse_list

    if marker is None:
        return list(selected) if selected is not None else list(default)
    if marker.kwargs or not marker.args or not all(isinstance(name, str) for name in marker.args):
        pytest.fail(
            f"{where}: sdxl_variants takes variant names as strings, e.g. "
            f"@pytest.mark.sdxl_variants('baseline', 'tiny_vae+batch'); got args {marker.args!r} "
            f"and keywords {marker.kwargs!r}",
            pytrace=False,
        )
    try:
        named = list(dict.fromkeys(composition for name in marker.args for composition in parse_list(name)))
    except VariantSpecError as error:
        pytest.fail(f"{where}: sdxl_variants: {error}", pytrace=False)
    return named if selected is None else [composition for composition in named if composition in selected]


def variant_of(item: pytest.Item) -> Composition | None:
    """The composition a test is parametrized with (its ``sdxl_variant``); None for any other test."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "sdxl_variant" not in callspec.params:
        return None
    from pytest_sdxl.variants.registry import Composition

    composition = callspec.params["sdxl_variant"]
    return composition if isinstance(composition, Composition) else None


def group_by_variant(items: list[pytest.Item]) -> None:
    """Put every test of one variant together, baseline first, so each pipeline is built once a session.

    pytest's own grouping of session-scoped parameters does not guarantee it (tests whose variants
    come in different orders get interleaved). Only sdxl tests move, among their own places; a
    variant's order is that of its first test, and its tests keep their order.
    """
    placed = [(index, composition.id) for index, item in enumerate(items) if (composition := variant_of(item))]
    if not placed:
        return  # a session without sdxl tests does not import the registry (every built-in variant)
    from pytest_sdxl.variants.registry import BASELINE

    first_seen: dict[str, int] = {}
    for index, variant in placed:
        first_seen.setdefault(variant, index)
    ordered = sorted(placed, key=lambda pair: (pair[1] != BASELINE, first_seen[pair[1]], pair[0]))
    grouped = [items[index] for index, _ in ordered]
    for (place, _), item in zip(placed, grouped, strict=True):
        items[place] = item


def planned_variants(items: Sequence[pytest.Item]) -> list[str]:
    """The variants of the sdxl benchmark tests, in their order, each once."""
    benchmarked = (variant_of(item) for item in items if "sdxl_benchmark" in getattr(item, "fixturenames", ()))
    return list(dict.fromkeys(composition.id for composition in benchmarked if composition is not None))
