"""The optional POST of a run's results to the user's `webhookUrl`. It never fails the run."""

from __future__ import annotations

from typing import Any

from .errors import SnapError
from .transport import RetryPolicy, Transport


async def post_results(url: str, payload: dict[str, Any], *, max_retries: int) -> dict[str, Any]:
    """POST once, retrying 5xx and network errors; returns what OUTPUT records of the delivery."""
    async with Transport(retry=RetryPolicy(max_retries=max_retries), timeout=30.0) as transport:
        try:
            response = await transport.request("POST", url, what="webhook POST", json=payload)
        except SnapError as error:
            return {"delivered": False, "statusCode": error.status, "error": str(error)}
    delivered = response.is_success
    problem = None if delivered else f"webhook POST answered HTTP {response.status_code}"
    return {"delivered": delivered, "statusCode": response.status_code, "error": problem}
