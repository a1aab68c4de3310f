"""Where a pipeline's weights come from: random architectures built on the target device, a local
folder or a hub id through ``from_pretrained``; offline CLIP tokenizers; image checks.

Owns: ``sources``, ``architectures``, ``clip_tokenizer``, ``images``.
May import: ``pytest_sdxl.machine``, ``pytest_sdxl.errors``. Never ``variants`` or anything above.
"""
