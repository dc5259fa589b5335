"""The actor's errors, grouped by layer; each message says what went wrong and what to do about it.

- input: `ActorInputError`, `MissingInputError` -- fix the named input field.
- source: `SourceError` -- the dataset or file at `eventsDatasetId` / `eventsUrl` cannot be read as a whole.
- transport: `ServiceUnavailableError` -- a host (Snap, or a user's `eventsUrl` / `webhookUrl`) did not answer
  usefully after every retry. It is no `SnapError`: the layer that called decides what it means.
- Snap: `SnapError` and its kinds -- Snap answered with an error, or (`SnapUnavailableError`) could not be reached.
- ledger: `LedgerError` -- the record of events accepted in earlier runs could not be read as a whole.

None of their messages may carry a token or a raw identifier.
"""

from __future__ import annotations


class ActorInputError(ValueError):
    """Input the run cannot start with; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Input field '{field}' {problem}")
        self.field = field


class MissingInputError(ActorInputError):
    """A real run lacks what its task needs; the message lists every missing piece at once."""

    def __init__(self, task: str, missing: list[tuple[str, str]]) -> None:
        needs = " and ".join(text for _, text in missing)
        ValueError.__init__(
            self, f"{task} needs {needs}. Add {'it' if len(missing) == 1 else 'them'} to the input, "
            "or set demoMode to true to try the task on sample data."
        )  # fmt: skip
        self.field = missing[0][0]
        self.fields = [field for field, _ in missing]


class SnapError(Exception):
    """Snap answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SnapAuthError(SnapError):
    """401/403: the token is wrong, expired, or lacks access. Nothing else can succeed."""


class SnapNotFoundError(SnapError):
    """404: the pixel or ad account does not exist or is not visible to the token."""


class SnapRejectedError(SnapError):
    """400: Snap refused the request. `event_index` is the offending event's index when Snap named one;
    `codes` and `messages` are Snap's own `errors.codes` / `error_msgs`, whichever shape carried them."""

    def __init__(
        self,
        reason: str,
        *,
        event_index: int | None = None,
        codes: tuple[str, ...] = (),
        messages: tuple[str, ...] = (),
    ) -> None:
        super().__init__(reason, status=400)
        self.reason = reason
        self.event_index = event_index
        self.codes = codes
        self.messages = messages


class SnapUnavailableError(SnapError):
    """Snap's rate limits, 5xx, time-outs or dropped connections outlasted every retry: try again later, or
    lower `maxRequestsPerSecond` / `maxConcurrency`."""


class ServiceUnavailableError(Exception):
    """The transport layer: rate limits, 5xx, time-outs or dropped connections outlasted every retry, for any
    host. The Snap layer turns it into `SnapUnavailableError`; the sources into `SourceError`; the webhook
    records it in OUTPUT."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LedgerError(Exception):
    """The ledger of events Snap accepted in earlier runs could not be read as a whole: the run sends no more,
    since it could not tell what was sent before (sent again, it would be charged again). Run it again."""


class SourceError(Exception):
    """A bulk source cannot be read as a whole (unreachable, not the format it claims, cut short)."""
