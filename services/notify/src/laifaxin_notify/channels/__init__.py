"""Channel senders: WeChat Official Account template messages, email (SMTP relay), Web Push (VAPID), and the
extra channels users add as Apprise URLs (:mod:`.apprise`: WeCom robot, DingTalk, Feishu, Telegram, Slack ...).

Each sender turns one :class:`~laifaxin_notify.models.DeliveryTask` into one :class:`Outcome`; it never raises
for a provider's answer, only classifies it (retry / permanent / skipped), so the pipeline decides where the
task goes next.
"""

from .base import Outcome, Sender

__all__ = ["Outcome", "Sender"]
