"""The optional POST of a run's results to the user's `webhookUrl`. It never fails the run."""

from __future__ import annotations

from typing import Any

from ..errors import ServiceUnavailableError
from ..net.transport import RetryPolicy, Transport
from ..net.url_guard import UnsafeUrlError, UrlGuard


async def post_results(url: str, payload: dict[str, Any], *, max_retries: int, url_guard: UrlGuard) -> dict[str, Any]:
    """POST once, retrying 5xx and network errors; returns what OUTPUT records of the delivery."""
    retry = RetryPolicy(max_retries=max_retries)
    async with Transport(retry=retry, timeout=30.0, url_guard=url_guard) as transport:
        try:
            response = await transport.request("POST", url, what="webhook POST", json=payload)
        except ServiceUnavailableError as error:
            return {"delivered": False, "statusCode": error.status, "error": str(error)}
        except UnsafeUrlError as error:
            return {"delivered": False, "statusCode": None, "error": str(error)}
    delivered = response.is_success
    problem = None if delivered else f"webhook POST answered HTTP {response.status_code}"
    return {"delivered": delivered, "statusCode": response.status_code, "error": problem}
