"""Write ``grader/checks/verdicts/digests.json``: salted digests of the references' outputs.

``python -m grader.checks.references.digests`` (``--check`` only compares) runs the
reference implementations on fixed inputs and stores, per check, the inputs and the digest
of each output (:mod:`grader.checks.verdicts.digests`), never the outputs. The student
edition's self-check runs the student's function on the same inputs and compares digests.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from grader.checks.references.lesson03 import lr_preview, reference_schedule
from grader.checks.verdicts.digests import DIGESTS_FILE, RESOLUTION, output_digest

#: The (epoch, lr) inputs ``schedule`` is checked on: both sides of the switch, the switch
#: epoch itself (a decay one epoch late differs there), and later epochs.
SCHEDULE_INPUTS = ((0, 0.1), (1, 0.1), (1, 0.0372), (2, 0.1), (2, 0.0372), (3, 0.05),
                   (9, 0.0031), (27, 0.2))
#: How far (as a share of a bin) an output must lie from its bin's edge, so that float32
#: arithmetic in the student's function (a relative error near 6e-8, 0.006 of a bin) lands in
#: the same bin.
EDGE_MARGIN = 0.1


def _offset(value: float) -> float:
    """0, or 0.5 when ``value`` lies within :data:`EDGE_MARGIN` of a bin's edge without it."""
    position = math.log(value) / RESOLUTION
    return 0.0 if abs(abs(position - round(position)) - 0.5) >= EDGE_MARGIN else 0.5


def _entry(check_id: str, outputs: list[float]) -> dict[str, Any]:
    offsets = [_offset(v) for v in outputs]
    return {"offsets": offsets,
            "digests": [output_digest(check_id, i, v, offset)
                        for i, (v, offset) in enumerate(zip(outputs, offsets, strict=True))]}


def build() -> dict[str, Any]:
    """The content of ``digests.json``."""
    schedule = _entry("03.schedule", [reference_schedule(e, lr) for e, lr in SCHEDULE_INPUTS])
    schedule["inputs"] = [{"epoch": epoch, "lr": lr} for epoch, lr in SCHEDULE_INPUTS]
    return {"format": 1, "resolution": RESOLUTION,
            "checks": {"03.schedule": schedule,
                       "03.lr_preview": _entry("03.lr_preview", lr_preview(None))}}


def render() -> str:
    """``digests.json`` as written: sorted keys, one-space indent, a final newline."""
    return json.dumps(build(), indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        same = DIGESTS_FILE.is_file() and DIGESTS_FILE.read_text(encoding="utf-8") == text
        print(f"{DIGESTS_FILE}: {'up to date' if same else 'out of date: run without --check'}")
        return 0 if same else 1
    DIGESTS_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {DIGESTS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
