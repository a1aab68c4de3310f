"""Where a pipeline's weights come from: random architectures built on the target device, a local
folder or a hub id through ``from_pretrained``; offline CLIP tokenizers; image checks.

Owns: ``sources``, ``source_checks`` (a typed weights source checked before anything loads),
``architectures``, ``random_weights``, ``clip_tokenizer``, ``images``, ``process_age``.
May import: ``pytest_sdxl.machine``, ``pytest_sdxl.errors``. Never ``variants`` or anything above.
"""
