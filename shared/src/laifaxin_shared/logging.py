"""structlog JSON logging with secret redaction, for every service.

Every log line is one JSON object on stdout. The :func:`redact_secrets` processor replaces the value of any key
that looks secret (password, passwd, secret, token, authorization, credential, api_key, cookie, private_key,
access_token ...) with ``"[REDACTED]"`` at any depth, and masks inline ``password=...`` / ``Bearer ...``
fragments in strings, so a careless ``log.info("login", password=pw)`` never writes the password.
Standard-library loggers (aiokafka, pymongo, uvicorn) are routed through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|authori[sz]ation|credential|api[_-]?key|cookie|private[_-]?key|"
    r"auth[_-]?code|app[_-]?password|session[_-]?key|ciphertext|client[_-]?secret)",
    re.IGNORECASE,
)
_INLINE = re.compile(
    r"(?i)(\b(?:password|passwd|pwd|secret|token|access_token|api_key|app_password)\s*[=:]\s*)"
    r"(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)
_BEARER = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)([^@\s]+)(@)")


def is_secret_key(key: str) -> bool:
    """True when a mapping key names something secret (see module docstring)."""
    return bool(_SECRET_KEY.search(key))


def redact_text(text: str) -> str:
    """Mask ``password=...``-style fragments, bearer/basic tokens and URL passwords inside free text."""
    text = _INLINE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)


def redact(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` with secret-looking keys and fragments masked; containers are copied, not mutated."""
    if _depth > 8:
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v, _depth + 1) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor applying :func:`redact` to every field of the event."""
    for key in list(event_dict):
        if is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact(event_dict[key])
    return event_dict


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    """Configure structlog and the standard library for ``service``; idempotent.

    Args:
        service: added to every line as ``service``.
        level: minimum level name (``DEBUG``, ``INFO`` ...).
        json: one JSON object per line (production) or coloured console lines (local debugging).
    """

    def add_service(_l: Any, _m: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


def get_logger(name: str | None = None) -> Any:
    """A structlog logger (``BoundLogger``) named ``name``."""
    return structlog.get_logger(name)
