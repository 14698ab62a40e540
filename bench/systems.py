"""What the benchmark asks of each system; baseline.py and facetrail_side.py implement it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.datasets import Labelled, Pair, PixelBox


@dataclass(frozen=True)
class PairOutcome:
    """``score``: higher means more alike. Both are ``None`` when a photo yielded no face."""

    score: float | None
    same: bool | None


@dataclass(frozen=True)
class IdentifyOutcome:
    """One prediction per probe (``None`` = unknown, no face or failed) and what went wrong.

    ``enroll_failures`` and ``probes_failed`` count photos the system could not process at all
    (including an enrollment photo without a face); ``first_error`` describes one of them.
    """

    predictions: list[str | None]
    probes_without_face: int
    # The best-ranked person for each probe whatever the threshold (``None``: no face, failed).
    ranked_first: list[str | None] = field(default_factory=list)
    probes_failed: int = 0
    enroll_failures: int = 0
    first_error: str = ""


class System(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def version(self) -> str:
        """Which models and versions were measured."""
        ...

    @property
    def rule(self) -> str:
        """The system's own fixed decision rule, in words."""
        ...

    def compare(self, pair: Pair) -> PairOutcome:
        """Largest face of ``pair.a`` against every face of ``pair.b``; the best one counts."""
        ...

    def detect(self, path: Path) -> list[PixelBox]: ...

    def identify(self, enroll: Sequence[Labelled], probes: Sequence[Path]) -> IdentifyOutcome:
        """Enroll the labelled photos, then name the largest face of each probe."""
        ...
