"""Stop requests: SIGTERM / SIGINT set a flag that the loop reads at step boundaries."""
from __future__ import annotations

import signal
from typing import Optional


class StopFlag:
    """SIGTERM / SIGINT set a flag; the loop checkpoints at the next step boundary (under torchrun: the
    next log step, where the ranks agree) and exits."""

    def __init__(self):
        self.signal: Optional[int] = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)

    def abandon(self) -> None:
        """This process is on its way out after a failure: ignore SIGTERM (torchrun sends it to every
        rank once one has exited) so that the one-line report and the summary get written."""
        ignore_sigterm()
        self._old.pop(signal.SIGTERM, None)


def ignore_sigterm() -> None:
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass


def stop_message(signum: Optional[int], step: int) -> str:
    """The summary's message for a run stopped by ``signum`` (None: a signal to another rank)."""
    if signum is None:
        return f"stopped by a signal to another process at step {step}"
    return f"stopped by signal {signal.Signals(signum).name} at step {step}"
