"""Is a zero-shot result probably wrong? The failure flag from the edge lock.

The edge lock (`refine.edge_lock`) asks whether the edges of the two images lock into place at
the result: how much the NGF alignment drops when the result is shifted by LOCK_SHIFT_PX,
relative to the drop of the fixed image against a shifted copy of itself. A correct match
of the same anatomy locks (same contrast about 0.95, different contrasts 0.2-0.85); a wrong
one is flat, whatever the cause: another subject or slice, noise, a mirrored image, a
truncated field of view or a start beyond reach (mostly below 0.1). LOCK_MIN was chosen on
training subjects only (`benchmarks/zeroshot_failures.py --split train`, 264 cases: 180 normal
registrations and 84 created failures): the threshold that maximises Youden's J, 0.207
(95% of the failures flagged, 1.5% of the successes: heavy-noise cases), rounded.
"""

from __future__ import annotations

LOCK_SHIFT_PX = 2.0  # of the input image
LOCK_MIN = 0.21


def failure_reasons(lock: float) -> list[str]:
    """Why the result is probably wrong (empty when nothing says so)."""
    if lock < LOCK_MIN:
        return [f"the edges of the two images do not lock into place (edge lock {max(lock, 0.0):.2f}, "
                f"below {LOCK_MIN}): they may not show the same anatomy, or one is mirrored, "
                f"truncated or very noisy"]
    return []
