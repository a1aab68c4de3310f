"""``python -m pytest_sdxl``: the command line."""

from __future__ import annotations

import sys

from pytest_sdxl.cli.main import main

sys.exit(main())
