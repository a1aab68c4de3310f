"""The results schema: one versioned JSON document per measurement, written atomically, read back
from any earlier version; several documents of one setup merged into one.

Owns: ``schema`` (the document, reading, writing), ``records`` (a variant's runs and device signals),
``store``, ``compatibility``, ``validation``, ``sessions``, ``settings_fields`` (the recorded settings' fields, as a
Protocol), ``merge`` (lanes and sessions joined).
May import: ``pytest_sdxl.variants`` (names only), ``pytest_sdxl.machine``, ``pytest_sdxl.errors``.
Never ``analysis``, ``reports`` or anything above: derived figures are added by those who read them.
"""
