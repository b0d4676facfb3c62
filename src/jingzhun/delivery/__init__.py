"""Delivery: channels, the delivery log, exactly-once sends, the worker.

``Worker(store, channels, render).run_once()`` sends the delivery queue's due messages through
``DeliveryChannel`` implementations (SMTP e-mail, HTTP SMS and push, signed webhooks, ad
audience files, call-centre and direct-mail lists), records every step in the ``deliveries``
table and sends each idempotency key once. ``delivery.yml`` configures the channels
(``load_delivery_settings``, ``build_channels``).
"""

from jingzhun.delivery._channels import (
    DeliveryChannel,
    HttpMessageLookup,
    MessageLookup,
    OutboundMessage,
    SendResult,
    SendStatus,
    message_id,
    scrub,
)
from jingzhun.delivery._files import (
    AD_COLUMNS,
    AdAudienceExport,
    AdFormat,
    CallCentreList,
    DirectMailList,
    normalise_email,
    normalise_phone,
    sha256_hex,
)
from jingzhun.delivery._http import (
    PLACEHOLDERS,
    HttpProviderChannel,
    HttpPushChannel,
    HttpSmsChannel,
    WebhookChannel,
    sign_webhook,
    verify_webhook,
)
from jingzhun.delivery._journal import SendJournal
from jingzhun.delivery._limits import Backoff, RateLimit, TokenBucket
from jingzhun.delivery._log import Claim, DeliveryLog, DeliveryRecord, Outcome
from jingzhun.delivery._settings import (
    SETTINGS_FILE,
    DeliverySettings,
    build_channels,
    load_delivery_settings,
)
from jingzhun.delivery._smtp import SmtpChannel, SmtpSecurity, build_mime
from jingzhun.delivery._tracking import Tracker, TrackingToken, sign_token, verify_token
from jingzhun.delivery._worker import (
    DeliveryReport,
    InDoubt,
    Render,
    Worker,
    render_from_payload,
)

__all__ = [
    "AD_COLUMNS",
    "PLACEHOLDERS",
    "SETTINGS_FILE",
    "AdAudienceExport",
    "AdFormat",
    "Backoff",
    "CallCentreList",
    "Claim",
    "DeliveryChannel",
    "DeliveryLog",
    "DeliveryRecord",
    "DeliveryReport",
    "DeliverySettings",
    "DirectMailList",
    "HttpMessageLookup",
    "HttpProviderChannel",
    "HttpPushChannel",
    "HttpSmsChannel",
    "InDoubt",
    "MessageLookup",
    "OutboundMessage",
    "Outcome",
    "RateLimit",
    "Render",
    "SendJournal",
    "SendResult",
    "SendStatus",
    "SmtpChannel",
    "SmtpSecurity",
    "TokenBucket",
    "Tracker",
    "TrackingToken",
    "WebhookChannel",
    "Worker",
    "build_channels",
    "build_mime",
    "load_delivery_settings",
    "message_id",
    "normalise_email",
    "normalise_phone",
    "render_from_payload",
    "scrub",
    "sha256_hex",
    "sign_token",
    "sign_webhook",
    "verify_token",
    "verify_webhook",
]
