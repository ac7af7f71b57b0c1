"""A one-line progress bar on stderr: epoch, step, loss, learning rate, early stopping's best, throughput, ETA."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Redraws in place on a terminal; in a log file, writes a line every 10 seconds."""

    def __init__(self, enabled: bool, total_steps: int, label: str, first_step: int = 0):
        self.enabled = enabled and total_steps > first_step
        self.interactive = sys.stderr.isatty()
        self.interval = 0.25 if self.interactive else 10.0
        self.total = total_steps
        self.first_step = first_step  # a resumed run counts its rate from here
        self.label = label
        self.start = time.perf_counter()
        self.last = 0.0

    def due(self) -> bool:
        now = time.perf_counter()
        return self.enabled and now - self.last >= self.interval

    def show(self, epoch: int, epochs: int, step: int, loss: float | None, samples: int, extras: str = "") -> None:
        """``extras``: more to show after the loss (the learning rate, early stopping's best)."""
        now = time.perf_counter()
        self.last = now
        elapsed = now - self.start
        rate = samples / elapsed if elapsed > 0 else 0.0
        done = step - self.first_step
        eta = (self.total - step) * elapsed / done if done else 0.0
        width = 24
        filled = int(width * step / self.total)
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(
            ("\r" if self.interactive else "")
            + f"{self.label} epoch {epoch + 1}/{epochs} [{bar}] step {step}/{self.total} "
            f"loss {'-' if loss is None else f'{loss:.4f}'} {extras + ' ' if extras else ''}"
            f"{rate:,.0f} samples/s ETA {eta:4.0f}s " + ("" if self.interactive else "\n")
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.interactive:
            sys.stderr.write("\n")
            sys.stderr.flush()
