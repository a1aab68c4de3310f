"""The pytest plugin entry point (pytest11 ``sdxl``).

Imports only pytest and the standard library at module level, so that a session that does not
use pytest-sdxl pays nothing for it being installed.
"""

from __future__ import annotations
