"""Channel senders: WeChat Official Account template messages, email (SMTP relay) and Web Push (VAPID).

Each sender turns one :class:`~laifaxin_notify.models.DeliveryTask` into one :class:`Outcome`; it never raises
for a provider's answer, only classifies it (retry / permanent / skipped), so the pipeline decides where the
task goes next.
"""

from .base import Outcome, Sender

__all__ = ["Outcome", "Sender"]
