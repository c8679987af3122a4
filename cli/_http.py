"""A node over HTTP, as the commands that are its clients call it (the admin's client
credentials, a department's push, a service point's kiosk, a resident's consents): one
request, and a refusal as the one-line error, with the node's own code and message.
httpx is imported when a command first calls a node, not when ``ccx`` starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cli._support import InputError

if TYPE_CHECKING:
    import httpx

__all__ = ["NODE_TIMEOUT", "call_node", "node_client", "pause"]

BUSY_WAIT_MAX = 60.0  # the longest wait for a busy node (429, 503) between two tries
NODE_TIMEOUT = 30.0  # seconds for one request (a batch of records is rescored at once)


def node_client(url: str, field: str = "--node") -> httpx.Client:
    """An HTTP client for the node at base URL ``url``. Raises InputError (``invalid_url``)."""
    import httpx

    if not url.startswith(("http://", "https://")):
        raise InputError("invalid_url", field, f"{url!r} is not an http:// or https:// URL")
    try:
        return httpx.Client(base_url=url.rstrip("/") + "/", timeout=NODE_TIMEOUT)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InputError("invalid_url", field, f"{url!r} is not a URL: {exc}") from exc


def call_node(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    token: str | None = None,
    auth_field: str = "--token",
    field: str = "--node",
    retry_busy: int = 0,
    on_busy: Callable[[str, float], None] | None = None,
    **request: Any,
) -> Any:
    """``method path`` on the node (``path`` relative to its base URL, no leading slash),
    with ``token`` as the bearer; the answer's JSON. Raises InputError: ``node_unreachable``,
    the node's own code (a 401 or 403 under ``auth_field``, else under ``field``),
    ``not_a_node`` for a 404 where no node answers (a URL with /v1), ``http_<status>``
    for another answer that is not the node's, ``invalid_response``.

    ``retry_busy``: how many times to send the request again after a 429 or 503 (only for
    a request that is safe to repeat), each after the node's Retry-After (1 s without one,
    at most BUSY_WAIT_MAX); ``on_busy(reason, seconds)`` hears of each wait."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = f"{client.base_url}{path}"
    for attempt in range(retry_busy + 1):
        try:
            response = client.request(method, path, headers=headers, **request)
        except httpx.TransportError as exc:
            raise InputError(
                "node_unreachable", field, f"cannot reach {url}: {exc or type(exc).__name__}"
            ) from exc
        if response.status_code not in (429, 503) or attempt == retry_busy:
            break
        wait = _retry_after(response.headers.get("Retry-After"))
        if on_busy is not None:
            on_busy(f"{response.status_code} {_refusal(response, url, field).code}", wait)
        pause(wait)
    if not response.is_success:
        refusal = _refusal(
            response, url, auth_field if response.status_code in (401, 403) else field
        )
        if refusal.code in ("not_found", "http_404") and not _is_a_node(client):
            base = str(client.base_url).rstrip("/")
            hint = "a node's URL is its base, without /v1"
            if base.endswith("/v1"):
                hint += f": {field} {base.removesuffix('/v1')}"
            raise InputError(
                "not_a_node", field, f"no ccx node answers at {base} (no /healthz): {hint}"
            )
        raise refusal
    try:
        return response.json()
    except ValueError as exc:
        raise InputError("invalid_response", field, f"{url} did not answer JSON") from exc


def pause(seconds: float) -> None:
    """Wait ``seconds`` between two calls to a node. A timed wait on an event rather than
    time.sleep: the story's test (tests/test_two_cities.py) runs these commands under
    libfaketime 0.9.10, whose clock_nanosleep refuses the absolute monotonic deadline
    CPython's time.sleep asks for (EINVAL), while timed waits on a lock work."""
    import threading

    threading.Event().wait(max(0.0, seconds))


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds; an HTTP date or nothing:
    one second), within 0..BUSY_WAIT_MAX."""
    try:
        seconds = float(value) if value is not None else 1.0
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), BUSY_WAIT_MAX) if seconds == seconds else 1.0


def _is_a_node(client: httpx.Client) -> bool:
    """Whether a ccx node answers at the client's base URL (its ``/healthz``)."""
    import httpx

    try:
        answer = client.get("healthz")
        return answer.status_code == 200 and answer.json() == {"status": "ok"}
    except (httpx.HTTPError, ValueError):
        return False


def _refusal(response: httpx.Response, url: str, field: str) -> InputError:
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        message = f"{url} answered {response.status_code} {response.reason_phrase}"
        return InputError(f"http_{response.status_code}", field, message)
    details = error.get("details")
    missing = details.get("missing") if isinstance(details, dict) else None
    # the node's message may name them already (issue 20: the consent list said twice)
    if isinstance(missing, list) and not all(str(kind) in message for kind in missing):
        message += f" (missing: {', '.join(map(str, missing))})"
    return InputError(code, field, message)
