"""Stopping a run on SIGINT / SIGTERM: at once before training begins, at the next step after."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

__all__ = ["SignalStop", "StopRequested"]


class StopRequested(BaseException):
    """A signal stopped the run where it was, without a checkpoint: before training began, or a
    second signal while stopping. A ``BaseException``, like ``KeyboardInterrupt``, so that no
    ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells report it."""
        return 128 + self.signum


class SignalStop:
    """While active, SIGINT and SIGTERM stop the run.

    Until :meth:`defer` is called (when training begins), a signal raises :class:`StopRequested`
    at once, so that start-up (imports, model loading, spawning env workers) goes no further.
    After it, a signal only sets ``signum`` and the training loop stops at its next step and saves
    a checkpoint; a second signal raises :class:`StopRequested` (stop now, without a checkpoint).

    Use as a context manager in the main thread. ``signum`` is the first signal received.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferred = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalStop:
        self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def defer(self) -> None:
        """From now on a signal asks the training loop to stop at its next step."""
        self._deferred = True

    @property
    def requested(self) -> bool:
        """Whether a signal has asked the run to stop."""
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            raise StopRequested(signum, f"{name} received again: stopped without saving a checkpoint")
        self.signum = signum
        if not self._deferred:
            raise StopRequested(signum, f"{name} received before training began: stopped")
        print(
            f"\n{name} received: stopping after this step and saving a checkpoint (again to abort)",
            file=sys.stderr,
        )

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells report it; 0 if none."""
        return 0 if self.signum is None else 128 + self.signum
