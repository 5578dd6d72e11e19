"""The outcome of one send attempt, and the sender protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ..models import DeliveryTask
from ..store import Binding

OutcomeKind = Literal["sent", "retry", "failed", "skipped"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one attempt.

    Attributes:
        kind: ``sent`` (provider accepted), ``retry`` (transient: try again later), ``failed`` (permanent),
            ``skipped`` (nothing to deliver to: binding inactive or subscription gone).
        detail: a secret-free reason (errcode, status, SMTP code).
        provider_id: WeChat ``msgid``, push ``Location`` or SMTP reply, when sent.
        retry_after_s: the wait the provider asked for (HTTP 429 ``Retry-After``, WeChat 45009 quota).
        dead_letter: a permanent failure an operator must see (configuration or payload bug): to the DLQ.
        alert: log at error level for on-call (quota, configuration).
        binding_action: ``disable`` (WeChat 43004 unfollowed) or ``delete`` (Web Push 404/410).
    """

    kind: OutcomeKind
    detail: str = ""
    provider_id: str = ""
    retry_after_s: float | None = None
    dead_letter: bool = False
    alert: bool = False
    binding_action: Literal["disable", "delete"] | None = None


class Sender(Protocol):
    """A channel: sends one task to one binding."""

    async def send(self, task: DeliveryTask, binding: Binding) -> Outcome:
        """Attempt the delivery once; classify the provider's answer, never raise for it."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
