"""The variant registry: which variants exist, composition with ``+`` and parsing of what users type.

A variant is one object (``definition.Variant``) carrying its apply function, needs,
conflicts and kind. The registry holds the built-in ones (``builtin``) and those added by
the ``pytest_sdxl_variants`` hook (``register``). A composition is a set of variants written with
``+`` in any order; its canonical form lists them in registry order, which is also the order they
are applied in. This module imports no torch: the plugin parses variant options with it at start-up.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from pytest_sdxl.errors import VariantSpecError
from pytest_sdxl.variants.builtin import BUILTIN
from pytest_sdxl.variants.definition import HALF_PRECISIONS, Context, Kind, Variant, problems

__all__ = [
    "BASELINE",
    "HALF_PRECISIONS",
    "REGISTRY",
    "Composition",
    "Context",
    "Kind",
    "Variant",
    "all_single_variants",
    "compose",
    "default_selection",
    "left_out_on_cpu",
    "parse",
    "parse_list",
    "register",
    "unregister",
    "valid_names",
]

REGISTRY: dict[str, Variant] = {variant.name: variant for variant in BUILTIN}
# Where each variant added by register() came from (a plugin's name), for the error on a duplicate name.
ADDED_BY: dict[str, str] = {}


def register(offered: Iterable[object], source: str) -> list[str]:
    """Add variants returned by a plugin; all or none of them. Returns the names added.

    Raises VariantSpecError naming the plugin for an object that is not a valid Variant, a name
    that is already registered, or a conflict or partner that names no registered variant.
    """
    new: dict[str, Variant] = {}
    for variant in offered:
        found = problems(variant)
        if found:
            raise VariantSpecError(f"{source} returned a bad variant: " + "; ".join(found))
        assert isinstance(variant, Variant)
        if REGISTRY.get(variant.name) == variant and variant.name in ADDED_BY:
            continue  # the same definition again (a command line loading one conftest twice in a process)
        if variant.name in REGISTRY or variant.name in new:
            builtin = "pytest-sdxl's built-in variants"
            where = ADDED_BY.get(variant.name, builtin) if variant.name in REGISTRY else source
            raise VariantSpecError(
                f"{source} returned a variant named {variant.name!r}, but {where} already defines one; "
                "give it another name"
            )
        new[variant.name] = variant
    known = set(REGISTRY) | set(new)
    for variant in new.values():
        unknown = [name for name in (*variant.conflicts, *variant.idle_without) if name not in known]
        if unknown:
            raise VariantSpecError(
                f"{source}: variant {variant.name!r} names unknown variants {unknown} in its conflicts or partners. "
                f"Valid variants: {', '.join(sorted(known))}"
            )
    REGISTRY.update(new)
    ADDED_BY.update(dict.fromkeys(new, source))
    return list(new)


def unregister(names: Iterable[str]) -> None:
    """Remove variants added by register() (built-in ones stay)."""
    for name in names:
        if name in ADDED_BY:
            del ADDED_BY[name]
            REGISTRY.pop(name, None)


BASELINE = "baseline"


@dataclass(frozen=True)
class Composition:
    """A valid set of variants in canonical (application) order."""

    names: tuple[str, ...]

    @property
    def id(self) -> str:
        """The canonical name, e.g. ``tiny_vae+compile_unet``; ``baseline`` for no optimization."""
        return "+".join(self.names) if self.names else BASELINE

    @property
    def variants(self) -> tuple[Variant, ...]:
        return tuple(REGISTRY[name] for name in self.names)

    @property
    def kind(self) -> Kind:
        """``exact`` when every part must reproduce the baseline's images, else ``lossy``."""
        return "lossy" if any(variant.kind == "lossy" for variant in self.variants) else "exact"

    @property
    def is_batch(self) -> bool:
        return "batch" in self.names

    def has(self, name: str) -> bool:
        return name in self.names

    @property
    def warmup_calls(self) -> int:
        """Pipeline calls at one shape before a call is timed: the most any part needs (1 for baseline).

        torch.compile's CUDA graphs and TorchScript's optimized plan are built on the second call at
        a shape; timing that call would time the build.
        """
        return max((variant.warmup_calls for variant in self.variants), default=1)

    def no_effect_reason(self) -> str:
        """Why part of this composition changes nothing ("" when every part takes effect)."""
        sentences = []
        for variant in self.variants:
            missing = [name for name in variant.idle_without if name not in self.names]
            if not missing:
                continue
            sentence = f"{variant.name} has no effect {variant.idle_because}; compose it with {' and '.join(missing)}"
            # When the missing partner conflicts with another part there is no composition to suggest.
            with contextlib.suppress(VariantSpecError):
                sentence += f" ({compose([*self.names, *missing]).id})"
            sentences.append(sentence)
        return ". ".join(sentences)

    @property
    def slow_on_cpu(self) -> str:
        """Why a CPU takes minutes over this composition ("" when it does not): its parts' reasons."""
        return "; ".join(dict.fromkeys(variant.slow_on_cpu for variant in self.variants if variant.slow_on_cpu))

    def unmet_requirements(self, device_type: str, dtype_name: str) -> list[str]:
        return [reason for variant in self.variants for reason in variant.unmet_requirements(device_type, dtype_name)]

    def __str__(self) -> str:
        return self.id


def valid_names() -> list[str]:
    return list(REGISTRY)


def unknown_name_message(name: str) -> str:
    close = difflib.get_close_matches(name, valid_names(), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown variant {name!r}.{hint} Valid variants: {', '.join(valid_names())}"


def compose(names: Iterable[str]) -> Composition:
    """Check a set of variant names and put it in canonical order."""
    chosen = list(dict.fromkeys(names))
    for name in chosen:
        if name not in REGISTRY:
            raise VariantSpecError(unknown_name_message(name))
    if BASELINE in chosen and len(chosen) > 1:
        others = "+".join(name for name in chosen if name != BASELINE)
        raise VariantSpecError(
            f"baseline cannot be combined with other variants (it means no optimization): write {others!r}. "
            f"Valid variants: {', '.join(valid_names())}"
        )
    for index, first in enumerate(chosen):
        for second in chosen[index + 1 :]:
            if second in REGISTRY[first].conflicts or first in REGISTRY[second].conflicts:
                raise VariantSpecError(
                    f"impossible combination: {first} and {second} cannot be combined "
                    f"({REGISTRY[first].summary}; {REGISTRY[second].summary}). "
                    f"Valid variants: {', '.join(valid_names())}"
                )
    order = {name: position for position, name in enumerate(REGISTRY)}
    canonical = tuple(sorted((name for name in chosen if name != BASELINE), key=order.__getitem__))
    return Composition(canonical)


def parse(spec: str) -> Composition:
    """Parse ``a+b+c`` (spaces and case forgiven) into a Composition or raise VariantSpecError."""
    if not isinstance(spec, str) or not spec.strip():
        raise VariantSpecError(f"empty variant specification {spec!r}. Valid variants: {', '.join(valid_names())}")
    parts = [part.strip().lower().replace("-", "_") for part in spec.split("+")]
    if any(not part for part in parts):
        raise VariantSpecError(
            f"variant specification {spec!r} has an empty part; join names with '+', "
            f"e.g. 'tiny_vae+cached_embeds'. Valid variants: {', '.join(valid_names())}"
        )
    return compose(parts)


def parse_list(spec: str) -> list[Composition]:
    """Parse a comma-separated list of compositions (``baseline,tiny_vae+batch``), duplicates removed."""
    compositions = [parse(item) for item in spec.split(",") if item.strip()]
    if not compositions:
        raise VariantSpecError(f"no variant in {spec!r}. Valid variants: {', '.join(valid_names())}")
    return list(dict.fromkeys(compositions))


def all_single_variants() -> list[Composition]:
    """Every registered variant on its own, baseline first."""
    return [compose([name]) for name in REGISTRY]


def default_selection(device_type: str, every: bool = False) -> tuple[list[Composition], list[Composition]]:
    """The single variants measured when none are named, and those left out on this device type.

    ``every`` (the ``all`` selection) takes every variant; otherwise a CPU leaves out the variants it takes
    minutes over (``Variant.slow_on_cpu``), and a GPU takes every one.
    """
    singles = all_single_variants()
    if every or device_type != "cpu":
        return singles, []
    slow = [composition for composition in singles if composition.slow_on_cpu]
    return [composition for composition in singles if composition not in slow], slow


def left_out_on_cpu(compositions: Iterable[Composition]) -> str:
    """The variants the CPU default leaves out, grouped by why: ``a, b (compiles for minutes); c (...)``."""
    by_reason: dict[str, list[str]] = {}
    for composition in compositions:
        by_reason.setdefault(composition.slow_on_cpu, []).append(composition.id)
    return "; ".join(f"{', '.join(names)} ({reason})" for reason, names in by_reason.items())
