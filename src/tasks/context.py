"""What a task gets to work with: the validated input, Snap's hosts, and where results go."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from ..input import ActorInput
from ..net.transport import RetryPolicy, Transport
from ..net.url_guard import UrlGuard
from ..platform import Platform
from ..results.sink import Progress, ResultSink
from ..snap.endpoints import Endpoints
from .access import Snap, open_snap


@dataclass(slots=True)
class RunContext:
    input: ActorInput
    endpoints: Endpoints
    sink: ResultSink
    progress: Progress
    run_id: str
    #: Checks users' URLs (`eventsUrl`, `webhookUrl`) and each redirect they take.
    url_guard: UrlGuard
    #: Storages, charging and the platform's signals (`main.py` passes the Apify SDK's; tests in-memory ones).
    platform: Platform
    #: Called with a reason when the run must stop early (abort, SIGTERM): read no more, finish what is in flight.
    stoppers: list[Callable[[str], object]] = field(default_factory=list)

    def snap(self) -> AbstractAsyncContextManager[Snap]:
        """The run's way to Snap, chosen here once: live, or a demo answering from samples offline."""
        return open_snap(self)

    def transport(self) -> Transport:
        return Transport(
            retry=RetryPolicy(max_retries=self.input.max_retries),
            max_connections=max(8, 2 * self.input.max_concurrency),
            max_requests_per_second=self.input.max_requests_per_second,
        )
