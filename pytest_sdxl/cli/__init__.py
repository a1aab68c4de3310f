"""The ``pytest-sdxl`` / ``python -m pytest_sdxl`` command line: the parser and one module per command.

Owns: ``main`` (parser, ``--version``, dispatch), ``options`` (what the commands share: exit statuses,
the settings flags, the plugin-variant flags, the gate's rules), and one module per command:
``variants``, ``run``, ``report``, ``merge``, ``compare``, ``ab`` (base and head interleaved), ``power``,
``overhead``, ``tune``, ``asv``;
beside them ``compare_review`` (compare's GPU state, quality and markdown), ``quality_options``
(the quality budget's options, shared by ``compare`` and ``tune``), ``ab_sides`` (each side's interpreter
and what its ``run`` knows), ``ab_summary`` (what ``ab`` writes under its verdict), ``power_options``,
``power_calibration`` and ``power_resume`` (power's option checks, calibration file and resumed trials),
and ``run_saving`` (how ``run`` writes its report).
May import: every layer below the faces, and ``suite`` for the asv template it ships. Never ``plugin``
except its hook-variant loader.
"""
