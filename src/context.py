"""What a task gets to work with: the validated input, Snap's hosts, and where results go."""

from __future__ import annotations

from dataclasses import dataclass

from .actor_input import ActorInput
from .results import Progress, ResultSink
from .snap_api import Endpoints
from .transport import RetryPolicy, Transport
from .url_guard import UrlGuard


@dataclass(slots=True)
class RunContext:
    input: ActorInput
    endpoints: Endpoints
    sink: ResultSink
    progress: Progress
    run_id: str
    #: Checks users' URLs (`eventsUrl`, `webhookUrl`) and each redirect they take.
    url_guard: UrlGuard

    def transport(self) -> Transport:
        return Transport(
            retry=RetryPolicy(max_retries=self.input.max_retries),
            max_connections=max(8, 2 * self.input.max_concurrency),
            max_requests_per_second=self.input.max_requests_per_second,
        )
