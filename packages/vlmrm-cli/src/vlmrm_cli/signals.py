"""Stopping a run on SIGINT / SIGTERM: at once before training begins, at the next step after."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

__all__ = ["STOP_TIMEOUT_ENV", "SignalStop", "StepTimedOut", "StopRequested"]

# Seconds the current step may still take after a signal before it is abandoned (a hung env worker
# must not make a stop wait for ever); read from this environment variable, default 30.
STOP_TIMEOUT_ENV = "VLMRM_STOP_TIMEOUT"
DEFAULT_STOP_TIMEOUT_S = 30.0


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


class StepTimedOut(BaseException):
    """The step under way when a signal came did not end within the stop timeout."""


class SignalStop:
    """While active, SIGINT and SIGTERM stop the run.

    Until :meth:`defer` is called (when training begins), a signal raises :class:`StopRequested`
    at once, so that start-up (imports, model loading, spawning env workers) goes no further.
    After it, a signal only sets ``signum`` and the training loop stops at its next step and saves
    a checkpoint; a second signal raises :class:`StopRequested` (stop now, without a checkpoint).
    If the step has not ended ``$VLMRM_STOP_TIMEOUT`` seconds (default 30) after the signal (a hung
    env worker), :class:`StepTimedOut` is raised where the main thread waits, until
    :meth:`training_ended` is called.

    Use as a context manager in the main thread. ``signum`` is the first signal received.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferred = False
        self._previous: dict[int, Any] = {}
        self._timer_armed = False
        self._previous_alarm: Any = None
        self._timeout_s = DEFAULT_STOP_TIMEOUT_S

    def __enter__(self) -> SignalStop:
        self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.training_ended()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def training_ended(self) -> None:
        """Training is over (the checkpoint comes next): the stop timeout no longer applies."""
        if self._timer_armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous_alarm)
            self._timer_armed = False

    def _arm_timeout(self) -> None:
        try:
            seconds = float(os.environ.get(STOP_TIMEOUT_ENV, DEFAULT_STOP_TIMEOUT_S))
        except ValueError:
            seconds = DEFAULT_STOP_TIMEOUT_S
        self._previous_alarm = signal.signal(signal.SIGALRM, self._timed_out)
        self._timer_armed = True
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
        self._timeout_s = seconds

    def _timed_out(self, signum: int, frame: FrameType | None) -> None:
        raise StepTimedOut(f"the step under way did not end within {self._timeout_s:g} s of the signal")

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
        self._arm_timeout()

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells report it; 0 if none."""
        return 0 if self.signum is None else 128 + self.signum
