"""The end-to-end tests' `wxsurvey run` stack: chaos.stack's, with the suite's assertions."""

from __future__ import annotations

from chaos.stack import Stack as _Stack
from chaos.stack import wait_until

__all__ = ["Stack", "wait_until"]


class Stack(_Stack):
    def check_exactly_once(self, timeout: float = 120) -> None:
        """Every acknowledged answer reaches SQL exactly once; no refused one does; tallies verify."""
        counts = self.exactly_once(timeout)
        assert counts["lost"] == counts["counted_twice"] == counts["refused_but_stored"] == 0, counts
        assert self.verify_tallies()
