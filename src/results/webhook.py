"""The optional POST of a run's results to the user's `webhookUrl`. It never fails the run."""

from __future__ import annotations

from typing import Any

import httpx

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
    if response.request.method != "POST":
        return {"delivered": False, "statusCode": None, "error": _redirected(response.request.url)}
    delivered = response.is_success
    problem = None if delivered else f"webhook POST answered HTTP {response.status_code}"
    return {"delivered": delivered, "statusCode": response.status_code, "error": problem}


def _redirected(location: httpx.URL) -> str:
    """A 301, 302 or 303 is followed (each hop checked by the URL guard) as HTTP has it: with a GET and without the
    results. It is not re-POSTed: the transport does not say which of the three it was, and a 303 tells that the
    POST was taken already. Only the new address's host is shown: webhook services keep their secret in the path
    (hooks.zapier.com/hooks/catch/<id>/<secret>/) or the query."""
    shown = str(location.copy_with(path="/", query=None, fragment=None, userinfo=b"")).removesuffix("/")
    return (
        f"webhook POST: webhookUrl redirected the POST to an address on {shown} (its path is not shown: it may hold "
        "the hook's secret), and a redirect (HTTP 301, 302 or 303) turns it "
        "into a GET without the results, so nothing was delivered. Set webhookUrl to the new address."
    )
