"""The ``tune`` search: which composition of variants is fastest here, at batch 1 and in images per
second, within a time budget and a quality floor; its inputs, its measuring function, its report and
resuming it.

Owns: ``search`` (the rules), ``candidates`` (what it measured and chose), ``measurement``, ``options``,
``report``, ``resume``.
May import: ``measure`` and every layer below it. Never ``plugin`` or ``cli``.
"""
