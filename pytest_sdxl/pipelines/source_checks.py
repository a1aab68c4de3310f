"""The weights sources a user types, checked before any pipeline is built: the model's and a replacement VAE's.

A model is a ``random:`` architecture, a folder on this disk or a hub id; a VAE is ``random`` (random weights at
the model's architecture), a folder or a hub id. Anything else is one usage error that says what is accepted, not a
failed load in every variant; whether a hub id's weights load is known only when they load. Apart from
``pytest_sdxl.settings``, whose option table (``PARSERS``) names these checks: what a source may be written as
belongs with where weights come from (``sources``), in the layer below the settings.
"""

from __future__ import annotations

import re
from pathlib import Path

from pytest_sdxl.errors import SettingsError

# A hub id: a name or owner/name of letters, digits, "_", "-" and ".", neither starting nor ending with "-" or "."
# (the hub's own rule). Anything else that is not a folder on this disk can only be a mistyped path.
HUB_NAME = r"[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?"
HUB_ID = re.compile(rf"(?:{HUB_NAME}/)?{HUB_NAME}")


def model_source(value: str, where: str) -> str:
    """The pipeline's weights: a ``random:`` architecture, a folder that exists, or a hub id.

    Checked before any pipeline is built, so that a typo is one usage error rather than a failed load in
    every variant; whether a hub id's weights load is known only when they load.
    """
    from pytest_sdxl.pipelines.sources import RANDOM_PREFIX, random_source_names

    random_sources = random_source_names()
    accepted = f"accepted: {', '.join(random_sources)}, a hub id (name or owner/name) or a folder"
    source = value.strip()
    if not source:
        raise SettingsError(f"{where}: empty model; {accepted}")
    if source.startswith(RANDOM_PREFIX):
        if source not in random_sources:
            raise SettingsError(f"{where}: {source!r} is not a random architecture; {accepted}")
        return source
    return weights_location(source, where, accepted)


def vae_source(value: str, where: str) -> str:
    """A replacement VAE's weights: ``random`` (the model's own architecture), a folder that exists, or a hub id."""
    from pytest_sdxl.pipelines.sources import RANDOM_VAE

    accepted = f"accepted: {RANDOM_VAE} (random weights at the model's architecture), a hub id or a folder"
    source = value.strip()
    if not source:
        raise SettingsError(f"{where}: empty source; {accepted}")
    if source == RANDOM_VAE:
        return source
    return weights_location(source, where, accepted)


def weights_location(source: str, where: str, accepted: str) -> str:
    """``source`` when it is a folder on this disk or reads as a hub id; a usage error otherwise."""
    path = Path(source).expanduser()
    if path.is_dir() or (HUB_ID.fullmatch(source) and ".." not in source and "--" not in source):
        return source
    if path.exists():
        raise SettingsError(f"{where}: {source!r} is a file, not the folder save_pretrained writes; {accepted}")
    raise SettingsError(f"{where}: no folder {source!r} exists here, and it cannot be a hub id; {accepted}")
