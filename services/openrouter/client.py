"""An async client for the parts of OpenRouter's API this service uses.

Documented shapes only: ``POST /api/v1/keys`` → ``{data, key}``, ``GET|PATCH|DELETE
/api/v1/keys/{hash}``, ``GET /api/v1/key``, ``GET /api/v1/credits``, ``GET
/api/v1/models``. JSON numbers are read as ``Decimal`` (amounts are USD).
Every call has a bounded timeout; 429 and 5xx are retried with exponential
backoff (honouring Retry-After up to a cap), nothing else is — except key
creation, which is not idempotent at OpenRouter: ``POST /api/v1/keys`` is
retried on 429 only (the request was refused, nothing was made), and an
ambiguous failure (5xx, timeout, broken answer) is left to the caller, who
looks the key up by its name before creating again. Key lists are read over
every page (``offset``) by :meth:`OpenRouterClient.keys_named`. Failures raise
:class:`OpenRouterError` with a stable reason. Keys never reach a log line or
an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Any

import httpx

from services.common.errors import Code, DomainError

log = logging.getLogger(__name__)


class OpenRouterError(DomainError):
    """OpenRouter refused or failed; ``reason`` says how."""

    domain = "openrouter.creditmeter.dev"


_BY_STATUS = {
    401: ("OPENROUTER_UNAUTHORIZED", Code.FAILED_PRECONDITION, "OpenRouter did not accept the key"),
    402: ("OPENROUTER_INSUFFICIENT_CREDITS", Code.FAILED_PRECONDITION, "the OpenRouter account is out of credits"),
    403: ("OPENROUTER_KEY_LIMIT_EXCEEDED", Code.FAILED_PRECONDITION, "the OpenRouter key's limit is exceeded"),
    404: ("OPENROUTER_NOT_FOUND", Code.NOT_FOUND, "OpenRouter does not know that resource"),
}


def _decimal_json(body: dict[str, Any]) -> bytes:
    """JSON with Decimal values written as exact number literals (no float on the way)."""
    parts = []
    for key, value in body.items():
        literal = format(value, "f") if isinstance(value, Decimal) else json.dumps(value)
        parts.append(f"{json.dumps(key)}:{literal}")
    return ("{" + ",".join(parts) + "}").encode()


class OpenRouterClient:
    def __init__(
        self,
        base_url: str,
        management_key: str,
        *,
        timeout_seconds: float = 10.0,
        retries: int = 3,
        backoff_seconds: float = 0.2,
        max_retry_after_seconds: float = 5.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._management_key = management_key
        self._retries = retries
        self._backoff = backoff_seconds
        self._max_retry_after = max_retry_after_seconds
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), follow_redirects=False)

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        key: str,
        body: dict[str, Any] | None = None,
        retry_server_errors: bool = True,
    ) -> dict[str, Any]:
        url = f"{self._base}{path}"
        headers = {"authorization": f"Bearer {key}", "accept": "application/json"}
        content = None
        if body is not None:
            headers["content-type"] = "application/json"
            content = _decimal_json(body)
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, url, headers=headers, content=content)
            except httpx.TimeoutException:
                raise OpenRouterError(
                    "OPENROUTER_TIMEOUT", "OpenRouter did not answer in time", code=Code.UNAVAILABLE
                ) from None
            except httpx.TransportError:
                raise OpenRouterError(
                    "OPENROUTER_UNAVAILABLE", "OpenRouter could not be reached", code=Code.UNAVAILABLE
                ) from None
            status = response.status_code
            if status == 429 or status >= 500:
                if attempt < self._retries and (status == 429 or retry_server_errors):
                    await asyncio.sleep(self._delay(attempt, response))
                    attempt += 1
                    continue
                raise OpenRouterError(
                    "OPENROUTER_UNAVAILABLE",
                    f"OpenRouter answered {status} after {attempt + 1} attempts",
                    code=Code.UNAVAILABLE,
                    metadata={"http_status": str(status)},
                )
            if status in _BY_STATUS:
                reason, code, message = _BY_STATUS[status]
                raise OpenRouterError(reason, message, code=code, metadata={"http_status": str(status)})
            if not 200 <= status < 300:
                raise OpenRouterError(
                    "OPENROUTER_BAD_RESPONSE",
                    f"OpenRouter answered {status}",
                    code=Code.UNAVAILABLE,
                    metadata={"http_status": str(status)},
                )
            try:
                parsed = json.loads(response.content, parse_float=Decimal) if response.content else {}
            except ValueError:
                raise OpenRouterError(
                    "OPENROUTER_BAD_RESPONSE", "OpenRouter's answer is not JSON", code=Code.UNAVAILABLE
                ) from None
            if not isinstance(parsed, dict):
                raise OpenRouterError(
                    "OPENROUTER_BAD_RESPONSE", "OpenRouter's answer is not a JSON object", code=Code.UNAVAILABLE
                )
            return parsed

    def _delay(self, attempt: int, response: httpx.Response) -> float:
        retry_after = response.headers.get("retry-after", "")
        if retry_after.isdigit():
            return min(float(retry_after), self._max_retry_after)
        return float(self._backoff * (2**attempt))

    @staticmethod
    def _data(answer: dict[str, Any], what: str) -> dict[str, Any]:
        data = answer.get("data")
        if not isinstance(data, dict):
            raise OpenRouterError(
                "OPENROUTER_BAD_RESPONSE", f"OpenRouter's {what} answer has no data object", code=Code.UNAVAILABLE
            )
        return data

    # --- key management (management key) ----------------------------------------------

    async def create_key(
        self, name: str, limit_usd: Decimal | None, limit_reset: str | None
    ) -> tuple[str, dict[str, Any]]:
        """Creates a key; returns (the plaintext key — shown only now, the key's data)."""
        body: dict[str, Any] = {"name": name}
        if limit_usd is not None:
            body["limit"] = limit_usd
        if limit_reset:
            body["limit_reset"] = limit_reset
        # Not retried on 5xx: OpenRouter may have made the key and lost only the answer (see the module doc).
        answer = await self._call(
            "POST", "/api/v1/keys", key=self._management_key, body=body, retry_server_errors=False
        )
        data = self._data(answer, "create key")
        plaintext = answer.get("key")
        if not isinstance(plaintext, str) or not plaintext or not isinstance(data.get("hash"), str):
            raise OpenRouterError(
                "OPENROUTER_BAD_RESPONSE", "OpenRouter's create key answer has no key or hash", code=Code.UNAVAILABLE
            )
        return plaintext, data

    async def get_key(self, key_hash: str) -> dict[str, Any]:
        return self._data(await self._call("GET", f"/api/v1/keys/{key_hash}", key=self._management_key), "get key")

    async def update_key(self, key_hash: str, *, limit_usd: Decimal | None, limit_reset: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"limit": limit_usd}
        if limit_reset:
            body["limit_reset"] = limit_reset
        answer = await self._call("PATCH", f"/api/v1/keys/{key_hash}", key=self._management_key, body=body)
        return self._data(answer, "update key")

    async def delete_key(self, key_hash: str) -> None:
        await self._call("DELETE", f"/api/v1/keys/{key_hash}", key=self._management_key)

    async def list_keys(self, offset: int = 0, include_disabled: bool = True) -> list[dict[str, Any]]:
        """One page of the account's keys (``GET /api/v1/keys?offset=…``; the page size is OpenRouter's)."""
        flag = "true" if include_disabled else "false"
        answer = await self._call(
            "GET", f"/api/v1/keys?offset={offset}&include_disabled={flag}", key=self._management_key
        )
        data = answer.get("data")
        if not isinstance(data, list):
            raise OpenRouterError(
                "OPENROUTER_BAD_RESPONSE", "OpenRouter's key list is not a list", code=Code.UNAVAILABLE
            )
        return [k for k in data if isinstance(k, dict)]

    async def keys_named(self, name: str, max_pages: int = 10_000) -> list[dict[str, Any]]:
        """Every key (disabled ones too) called ``name``, read over all pages until an empty one."""
        found: list[dict[str, Any]] = []
        offset = 0
        for _ in range(max_pages):
            page = await self.list_keys(offset)
            if not page:
                return found
            found.extend(k for k in page if k.get("name") == name and isinstance(k.get("hash"), str))
            offset += len(page)
        raise OpenRouterError("OPENROUTER_BAD_RESPONSE", "OpenRouter's key list did not end", code=Code.UNAVAILABLE)

    async def credits(self) -> tuple[Decimal, Decimal]:
        data = self._data(await self._call("GET", "/api/v1/credits", key=self._management_key), "credits")
        try:
            return Decimal(str(data["total_credits"])), Decimal(str(data["total_usage"]))
        except (KeyError, ArithmeticError):
            raise OpenRouterError(
                "OPENROUTER_BAD_RESPONSE", "OpenRouter's credits answer is incomplete", code=Code.UNAVAILABLE
            ) from None

    # --- a user's key -------------------------------------------------------------------

    async def current_key(self, api_key: str) -> dict[str, Any]:
        """What OpenRouter knows about ``api_key`` (usage, limit); OPENROUTER_UNAUTHORIZED if it is not a key."""
        return self._data(await self._call("GET", "/api/v1/key", key=api_key), "current key")

    # --- catalog ---------------------------------------------------------------------------

    async def models(self) -> list[dict[str, Any]]:
        answer = await self._call("GET", "/api/v1/models", key=self._management_key)
        data = answer.get("data")
        if not isinstance(data, list):
            raise OpenRouterError(
                "OPENROUTER_BAD_RESPONSE", "OpenRouter's model list is not a list", code=Code.UNAVAILABLE
            )
        return [m for m in data if isinstance(m, dict)]
