"""OCR accuracy measures used by the tests and the benchmark: edit distance over characters or
words, after normalising whitespace (runs of spaces and line breaks count as one space)."""

from __future__ import annotations

from collections.abc import Sequence


def normalise(text: str) -> str:
    return " ".join(text.split())


def edit_distance(a: Sequence[object], b: Sequence[object]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def char_accuracy(read: str, truth: str) -> float:
    """1 - character error rate (floored at 0), on whitespace-normalised text."""
    read, truth = normalise(read), normalise(truth)
    if not truth:
        return 1.0 if not read else 0.0
    return max(0.0, 1.0 - edit_distance(read, truth) / len(truth))


def word_accuracy(read: str, truth: str) -> float:
    """1 - word error rate (floored at 0)."""
    read_words, truth_words = normalise(read).split(), normalise(truth).split()
    if not truth_words:
        return 1.0 if not read_words else 0.0
    return max(0.0, 1.0 - edit_distance(read_words, truth_words) / len(truth_words))
