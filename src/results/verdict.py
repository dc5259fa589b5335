"""The run's verdict: succeeded or failed, and the one status message that says why.

Schedules, integrations and run-failure webhooks react to the run's status alone, so the
verdict must tell the truth: a run that delivered nothing fails, and its message names what
happened to the events and the most common reasons. Pure: it reads the summary, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from .rows import DUPLICATE, NOT_ACCEPTED
from .summary import Summary

#: What the run's status message calls an accepted event, by task kind.
_ACCEPTED = {"send": ("sent", "sent"), "validate": ("valid", "valid"), "demo": ("demo", "prepared")}
_TO_SEND = "for a real run set demoMode to false and give accessToken"
#: Reasons quoted in the status message; the rest are in OUTPUT's topErrors and the report.
STATUS_REASONS = 2
REASON_CHARS = 120


@dataclass(frozen=True, slots=True)
class Verdict:
    succeeded: bool
    message: str


def conversion_verdict(summary: Summary, *, validate: bool, failure: str | None = None) -> Verdict:
    """Send and validate runs: nothing accepted (every event invalid, rejected or failed) fails the run."""
    kind = "demo" if summary.demo else "validate" if validate else "send"
    status, verb = _ACCEPTED[kind]
    accepted, total = summary.counts.get(status, 0), summary.total
    head = f"{accepted:,} of {total:,} {verb}"
    problems = [f"{summary.counts[name]:,} {name}" for name in NOT_ACCEPTED if summary.counts.get(name)]
    duplicates = summary.counts.get(DUPLICATE, 0)
    if problems or duplicates:
        head += ": " + ", ".join(problems)
        if problems and (reasons := _top_reasons(summary)):
            head += f" ({reasons})"
        if duplicates:
            # Not a failure: Snap accepted these in an earlier run or earlier in this one (see `ledger`), so they
            # were not sent or charged again.
            head += ("; " if problems else "") + f"{duplicates:,} already sent earlier"
    if kind == "send":
        head += f"; {summary.charged:,} charged"
    elif kind == "demo":
        head = f"Demo: {head}; nothing was sent to Snap or charged ({_TO_SEND})"
    if summary.interrupted:
        return Verdict(False, f"{head}. Stopped early: {summary.interrupted}")
    if failure is not None:
        return Verdict(False, f"{failure} ({head})" if total else failure)
    if total == 0:
        return Verdict(False, f"{summary.task}: the source held no events, nothing was sent")
    return Verdict(accepted + duplicates > 0, head)


def lookup_verdict(summary: Summary, *, noun: str, failure: str | None = None) -> Verdict:
    """Pixel and test-event tasks: an answer from Snap, even an empty one, is a success."""
    if failure is not None:
        return Verdict(False, failure)
    found = summary.total
    prefix = f"Demo: sample data, nothing was read from Snap ({_TO_SEND}). " if summary.demo else ""
    return Verdict(True, f"{prefix}{summary.task}: {found:,} {noun}{'' if found == 1 else 's'}")


def _top_reasons(summary: Summary) -> str:
    reasons = summary.errors.most_common(STATUS_REASONS)
    return "; ".join(_short(reason) + (f" x{count:,}" if count > 1 else "") for reason, count in reasons)


def _short(reason: str) -> str:
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"
