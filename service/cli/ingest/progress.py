"""The progress of an ingest on stderr: files done of the total, rate, time left, and how each ended."""

from __future__ import annotations

import sys
from collections import Counter


class Progress:
    def __init__(self, total: int, description: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=description, unit="file", file=sys.stderr, dynamic_ncols=True,
                         mininterval=0.5, smoothing=0.1)  # smoothing: an ETA that follows the recent rate
        self._counts: Counter[str] = Counter()

    def advance(self, status: str) -> None:
        self._counts[status] += 1
        self._bar.set_postfix_str(", ".join(f"{name} {n}" for name, n in sorted(self._counts.items())),
                                  refresh=False)
        self._bar.update()

    def note(self, message: str) -> None:
        """A line above the bar (the bar is drawn again below it)."""
        self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()
