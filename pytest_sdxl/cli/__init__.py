"""The ``pytest-sdxl`` / ``python -m pytest_sdxl`` command line: the parser and one module per command.

Owns: ``main`` (parser, ``--version``, dispatch), ``options`` (what the commands share: exit statuses,
the settings flags, the plugin-variant flags, the gate's rules), and one module per command:
``variants``, ``run``, ``report``, ``merge``, ``compare``, ``ab`` (base and head interleaved), ``power``,
``overhead``, ``tune``, ``asv``;
beside them ``compare_review`` (compare's GPU state, quality and markdown) and ``quality_options``
(the quality budget's options, shared by ``compare`` and ``tune``).
May import: every layer below the faces, and ``suite`` for the asv template it ships. Never ``plugin``
except its hook-variant loader.
"""
