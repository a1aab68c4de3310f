"""Add up ``power --json`` files of one experiment run in several processes (one per GPU).

Usage: python tools/merge_power.py OUT_STEM FILE.json [FILE.json ...]   writes OUT_STEM.md and OUT_STEM.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_sdxl.measure.power import combined, power_from_dict, power_report
from pytest_sdxl.results.schema import encode_float, write_atomically


def main(arguments: list[str]) -> int:
    if len(arguments) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    stem, files = arguments[0], arguments[1:]
    total = combined([power_from_dict(json.loads(Path(name).read_text())) for name in files])
    text = power_report(total)
    print(text)
    write_atomically(stem + ".md", text + "\n")
    write_atomically(stem + ".json", json.dumps(encode_float(total.as_dict()), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
