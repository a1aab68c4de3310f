"""CLIP tokenizers built offline, at run time, with no hub download.

A byte-level vocabulary (every byte character, alone and as a word end) with no merges tokenizes
any text; it is enough for random-weight pipelines, whose timing does not depend on the tokens.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
MAX_LENGTH = 77


def byte_characters() -> list[str]:
    """The 256 printable characters CLIP's byte-level BPE uses to stand for the 256 byte values."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    characters = {byte: chr(byte) for byte in printable}
    next_free = 256
    for byte in range(256):
        if byte not in characters:
            characters[byte] = chr(next_free)
            next_free += 1
    return [characters[byte] for byte in range(256)]


def vocabulary() -> dict[str, int]:
    """514 entries: each byte character, each with '</w>', then the two special tokens (ids 512 and 513)."""
    characters = byte_characters()
    tokens = [*characters, *(character + "</w>" for character in characters), START_OF_TEXT, END_OF_TEXT]
    return {token: index for index, token in enumerate(tokens)}


def write_tokenizer_files(folder: Path) -> None:
    """Write vocab.json, merges.txt and tokenizer_config.json that CLIPTokenizer loads."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocabulary(), ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    config = {
        # Without model_max_length the tokenizer overflows converting its 'infinite' default.
        "model_max_length": MAX_LENGTH,
        "bos_token": START_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT,
        "pad_token": END_OF_TEXT,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def build_clip_tokenizer() -> Any:
    """A CLIPTokenizer over the byte-level vocabulary, loaded through from_pretrained with no network."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="pytest-sdxl-tokenizer-") as folder:
        write_tokenizer_files(Path(folder))
        # Some transformers releases ignore vocabulary files given to the constructor: go through
        # from_pretrained, which reads everything into memory before the folder is removed.
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


VOCABULARY_SIZE = 514
END_OF_TEXT_ID = 513
START_OF_TEXT_ID = 512
