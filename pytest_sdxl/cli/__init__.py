"""The ``pytest-sdxl`` / ``python -m pytest_sdxl`` command line: the parser and one module per
command.

Owns: ``main`` (parser and dispatch), ``options`` (what every command shares: exit statuses, the
settings flags), and the commands.
May import: every layer below the faces. Never ``plugin`` except its hook-variant loader.
"""
