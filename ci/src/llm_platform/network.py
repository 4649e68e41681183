"""How long a build or a publish waits on the network: the one place that defines the bounds, for the registry
client and the Hugging Face Hub alike.

| bound | default | what |
| --- | --- | --- |
| `connect` | 15 s | opening a connection |
| `metadata` | 20 s | the answer to a small request (API check, HEAD, manifest, tag list, token, Hub metadata) |
| `read` | 60 s | a stall: no byte of a blob or model file moving, either way (`--timeout`, `$LLM_PLATFORM_HTTP_TIMEOUT`) |
| `retry_after_max` | 60 s | the longest `Retry-After` honoured; a 429/503 asking for longer gives up at once |
| `retry_budget` | 1.5 x `read` | what one request may spend stalled or waiting between retries before it gives up |

`--timeout T` sets `read` to T and caps the others at T (and the retry budget at 1.5 T). Time spent moving bytes
never counts against a bound: only silence and waits do.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from llm_platform.errors import InputError

TIMEOUT_ENV = "LLM_PLATFORM_HTTP_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
MAX_BACKOFF = 8.0


@dataclass(frozen=True)
class NetworkBounds:
    """Seconds: see the module docstring."""

    connect: float = 15.0
    metadata: float = 20.0
    read: float = DEFAULT_TIMEOUT
    retry_after_max: float = 60.0
    retry_budget: float = 1.5 * DEFAULT_TIMEOUT

    @classmethod
    def from_timeout(
        cls, timeout: float | None = None, *, environ: Mapping[str, str] | None = None
    ) -> NetworkBounds:
        """The bounds for a stall bound of `timeout` seconds (None: `$LLM_PLATFORM_HTTP_TIMEOUT`, else 60)."""
        where = "--timeout"
        if timeout is None:
            text = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "").strip()
            if not text:
                return cls()
            where = f"${TIMEOUT_ENV}"
            try:
                timeout = float(text)
            except ValueError:
                raise InputError(f"{where}={text!r}: not a number of seconds") from None
        if not math.isfinite(timeout) or timeout <= 0:
            raise InputError(f"{where} {timeout}: must be a positive number of seconds")
        return cls(
            connect=min(cls.connect, timeout),
            metadata=min(cls.metadata, timeout),
            read=timeout,
            retry_after_max=min(cls.retry_after_max, 1.5 * timeout),
            retry_budget=1.5 * timeout,
        )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date (a past date: 0); None when
    absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT by definition
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _attempts(count: int) -> str:
    return f"{count} attempt" + ("" if count == 1 else "s")


class GiveUp(Exception):  # noqa: N818 - a decision, not an error: the caller turns it into its own error
    """Retrying is over; the message says why (attempts, the retry budget, a Retry-After too long)."""


class RetryBudget:
    """The retries of one request: how many are left, how long to wait before the next, and how much of the
    retry budget stalls and waits have used so far (time spent moving bytes is not counted)."""

    def __init__(self, bounds: NetworkBounds, *, retries: int, backoff: float = 0.5) -> None:
        self.bounds = bounds
        self.retries = retries
        self.backoff = backoff
        self.failures = 0
        self.spent = 0.0

    def timeout(self, bound: float) -> float:
        """`bound`, or what is left of the budget after a failure: a retry that stalls too ends within it."""
        if not self.failures:
            return bound
        return max(0.1, min(bound, self.bounds.retry_budget - self.spent))

    def failed(self, *, stalled: float = 0.0, retry_after: float | None = None) -> float:
        """Count a failed attempt (`stalled`: seconds it waited for nothing); return the seconds to wait before
        the next attempt, or raise GiveUp."""
        self.failures += 1
        self.spent += stalled
        if self.failures > self.retries:
            raise GiveUp(f"gave up after {_attempts(self.failures)}")
        delay = min(self.backoff * 2 ** (self.failures - 1), MAX_BACKOFF)
        if retry_after is not None:
            if retry_after > self.bounds.retry_after_max:
                raise GiveUp(
                    f"asked to retry after {retry_after:.0f} s, longer than the {self.bounds.retry_after_max:g} s "
                    f"this waits"
                )
            delay = max(delay, retry_after)
        if self.spent + delay >= self.bounds.retry_budget:
            raise GiveUp(self._over_budget())
        return delay

    def _over_budget(self) -> str:
        return (
            f"gave up after {_attempts(self.failures)}, {self.spent:.1f} s stalled or waiting: the retry budget is "
            f"{self.bounds.retry_budget:g} s (1.5 x --timeout or ${TIMEOUT_ENV})"
        )

    def waited(self, seconds: float) -> None:
        """Count time spent waiting between attempts."""
        self.spent += seconds

    def check(self) -> None:
        """Raise GiveUp when the budget is used up (for retries that someone else schedules)."""
        if self.failures and self.spent >= self.bounds.retry_budget:
            raise GiveUp(self._over_budget())
