"""Where a pipeline's weights come from: random architectures built on the target device, a local
folder or a hub id through ``from_pretrained``; offline CLIP tokenizers; image checks.

Owns: ``sources``, ``source_checks`` (a typed weights source checked before anything loads),
``architectures``, ``random_weights``, ``clip_tokenizer``, ``images``, ``process_age``.
May import: ``pytest_sdxl.machine``, ``pytest_sdxl.errors``. Never ``variants`` or anything above.
"""

import logging

# transformers warns, once per image-processor class, that without torchvision it falls back to the PIL
# implementation, and diffusers' SDXL pipeline module imports two such classes: every run on a machine
# without torchvision printed two lines asking for it. pytest-sdxl builds no image processor (SDXL's
# pipelines have no feature extractor to feed), so this notice, and only it, is dropped.
TORCHVISION_FALLBACK_NOTICE = "requires torchvision (not installed); falling back to"
logging.getLogger("transformers.utils.import_utils").addFilter(
    lambda record: TORCHVISION_FALLBACK_NOTICE not in record.getMessage()
)
