"""The readiness probe every HTTP service serves at ``/readyz`` (Kubernetes readinessProbe)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse

from .mongo import ping

CHECK_TIMEOUT_S = 2.0
"""Seconds each dependency has to answer."""


async def readiness(mongo: Any, kafka: Callable[[], Awaitable[bool]] | None) -> JSONResponse:
    """200 ``{"status": "ready", "mongodb": true, "kafka": true}`` when MongoDB answers ``ping`` and ``kafka()``
    answers true, each within :data:`CHECK_TIMEOUT_S`; otherwise 503 ``not_ready`` with the failing check false
    and its exception's type in ``<check>_error`` (never its text). ``kafka=None`` leaves Kafka unchecked (a
    service that does not consume)."""
    checks: dict[str, Any] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            checks["mongodb"] = await ping(mongo)
    except Exception as exc:  # noqa: BLE001  # any failure means "not ready"; the type is reported
        checks["mongodb"] = False
        checks["mongodb_error"] = type(exc).__name__
    if kafka is not None:
        try:
            checks["kafka"] = bool(await kafka())
        except Exception as exc:  # noqa: BLE001  # any failure means "not ready"; the type is reported
            checks["kafka"] = False
            checks["kafka_error"] = type(exc).__name__
    ready = all(v is True for k, v in checks.items() if not k.endswith("_error"))
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", **checks}, status_code=200 if ready else 503
    )
