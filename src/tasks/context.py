"""What a task gets to work with: the validated input, Snap's hosts, and where results go."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..input import ActorInput
from ..ledger import KeyValueStore
from ..net.transport import RetryPolicy, Transport
from ..net.url_guard import UrlGuard
from ..results.sink import Progress, ResultSink
from ..snap.api import Endpoints


@dataclass(slots=True)
class RunContext:
    input: ActorInput
    endpoints: Endpoints
    sink: ResultSink
    progress: Progress
    run_id: str
    #: Checks users' URLs (`eventsUrl`, `webhookUrl`) and each redirect they take.
    url_guard: UrlGuard
    #: Opens the named store of the ledger of accepted events (`ledger.LEDGER_STORE`); None: no ledger.
    ledger_store: Callable[[], Awaitable[KeyValueStore]] | None = None
    #: Called with a reason when the run must stop early (abort, SIGTERM): read no more, finish what is in flight.
    stoppers: list[Callable[[str], object]] = field(default_factory=list)

    def transport(self) -> Transport:
        return Transport(
            retry=RetryPolicy(max_retries=self.input.max_retries),
            max_connections=max(8, 2 * self.input.max_concurrency),
            max_requests_per_second=self.input.max_requests_per_second,
        )
