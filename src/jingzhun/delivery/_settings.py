"""``delivery.yml`` in the project folder: channels, tracking, rate limits, the worker's knobs.

Secrets never live in the file: it names the environment variables that hold them
(``password_env``, ``auth_env``, ``secret_env``), read when the channels are built.

```yaml
worker: {batch_size: 100, lease_seconds: 300, settle_seconds: 10, poll_seconds: 5,
         backoff: {base_seconds: 60, max_seconds: 3600, max_attempts: 5, seed: 0}}
tracking:
  secret_env: JINGZHUN_TRACKING_SECRET     # HMAC key of open, click and unsubscribe tokens
  base_url: https://t.example.com          # serves /o/{token}.gif and /c/{token}?u=...
  unsubscribe_url: https://t.example.com/unsubscribe
  unsubscribe_mailto: unsubscribe@example.com
email:
  host: smtp.example.com
  port: 587
  security: starttls                       # none | starttls | tls
  from_address: "Shop <news@example.com>"
  username: mailer
  password_env: JINGZHUN_SMTP_PASSWORD
  rate: {per_second: 50, burst: 50}
  in_doubt: hold                           # hold | resend
  lookup: {url: "https://api.esp.example/messages/{message_id}", auth_env: ESP_TOKEN}
sms:
  url: https://sms.example.com/v1/messages
  auth_env: SMS_API_TOKEN                  # header value: "Bearer <token>"
  body: {to: "{address}", text: "{body}", reference: "{message_id}"}
  rate: {per_second: 10}
push:
  url: https://push.example.com/v1/notifications
  auth_env: PUSH_API_TOKEN
  body: {external_id: "{address}", title: "{subject}", message: "{body}"}
  status_map: {404: hard_bounce}
webhook: {url: https://crm.example.com/hooks/jingzhun, secret_env: JINGZHUN_WEBHOOK_SECRET}
ads: {folder: exports/ads, format: google}            # google | meta
call_centre: {folder: exports/call_centre}
direct_mail: {folder: exports/direct_mail}
```
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from jingzhun.core import NotFoundError, SpecError, SpecProblem, parse_model
from jingzhun.core._yaml import LocatedYaml, load_yaml
from jingzhun.delivery._channels import DeliveryChannel, HttpMessageLookup, SendStatus
from jingzhun.delivery._files import AdAudienceExport, AdFormat, CallCentreList, DirectMailList
from jingzhun.delivery._http import (
    PLACEHOLDERS,
    HttpPushChannel,
    HttpSmsChannel,
    WebhookChannel,
    template_placeholders,
)
from jingzhun.delivery._limits import Backoff, RateLimit
from jingzhun.delivery._smtp import SmtpChannel, SmtpSecurity
from jingzhun.delivery._tracking import Tracker
from jingzhun.delivery._worker import InDoubt

SETTINGS_FILE = "delivery.yml"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateSettings(_Model):
    """Messages a second and how many may go at once."""

    per_second: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)

    def limit(self) -> RateLimit:
        """As a ``RateLimit``."""
        return RateLimit(self.per_second, self.burst)


class BackoffSettings(_Model):
    """Retry delays (seconds) and attempts."""

    base_seconds: float = Field(default=60.0, gt=0)
    max_seconds: float = Field(default=3_600.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    seed: int = 0


class WorkerSettings(_Model):
    """The worker's knobs."""

    batch_size: int = Field(default=100, ge=1, le=10_000)
    lease_seconds: float = Field(default=300.0, gt=0)
    settle_seconds: float = Field(default=10.0, ge=0)
    poll_seconds: float = Field(default=5.0, gt=0)
    backoff: BackoffSettings = Field(default_factory=BackoffSettings)

    @model_validator(mode="after")
    def _lease(self) -> WorkerSettings:
        if self.lease_seconds <= 2 * self.settle_seconds:
            raise ValueError("lease_seconds must be more than twice settle_seconds")
        return self


class TrackingSettings(_Model):
    """Open pixel, click redirects and unsubscribe links."""

    secret_env: str
    base_url: str = ""
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""

    @field_validator("base_url", "unsubscribe_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value


class LookupSettings(_Model):
    """A provider's API that says whether it holds a message id."""

    url: str
    auth_header: str = "Authorization"
    auth_env: str = ""
    auth_scheme: str = "Bearer"
    found_field: str = ""

    @field_validator("url")
    @classmethod
    def _placeholder(cls, value: str) -> str:
        if "{message_id}" not in value:
            raise ValueError("the lookup url needs a {message_id} placeholder")
        return value


class EmailSettings(_Model):
    """The SMTP server e-mail goes through."""

    host: str
    port: int = Field(default=587, ge=1, le=65_535)
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    from_address: str
    username: str = ""
    password_env: str = ""
    ca_file: str = ""
    timeout_seconds: float = Field(default=30.0, gt=0)
    rate: RateSettings | None = None
    in_doubt: InDoubt = InDoubt.HOLD
    lookup: LookupSettings | None = None

    @model_validator(mode="after")
    def _no_clear_password(self) -> EmailSettings:
        if self.username and self.security is SmtpSecurity.NONE and self.host not in _LOCAL_HOSTS:
            raise ValueError(
                "a login over security 'none' sends the password in clear text; use starttls "
                "or tls (security: none is for a relay on this machine)"
            )
        if self.username and not self.password_env:
            raise ValueError("username needs password_env, the variable holding the password")
        return self


class ProviderSettings(_Model):
    """An HTTP API for SMS or push."""

    url: str
    body: dict[str, Any]
    auth_header: str = "Authorization"
    auth_env: str = ""
    auth_scheme: str = "Bearer"
    encoding: str = Field(default="json", pattern="^(json|form)$")
    id_field: str = "id"
    status_map: dict[int, SendStatus] | None = None
    dedupes_by_key: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0)
    rate: RateSettings | None = None
    in_doubt: InDoubt = InDoubt.HOLD
    lookup: LookupSettings | None = None

    @field_validator("body")
    @classmethod
    def _placeholders(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = template_placeholders(value) - set(PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join(sorted(unknown))}; use "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            )
        return value


class WebhookSettings(_Model):
    """The company's endpoint that receives signed message events."""

    url: str
    secret_env: str
    receiver_dedupes: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0)
    rate: RateSettings | None = None
    in_doubt: InDoubt = InDoubt.HOLD


class FileSettings(_Model):
    """A folder (relative to the project) where a file channel writes its lists."""

    folder: str
    format: AdFormat = AdFormat.GOOGLE  # ads only


class DeliverySettings(_Model):
    """``delivery.yml``: every channel the project sends through, and the worker's knobs."""

    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    tracking: TrackingSettings | None = None
    email: EmailSettings | None = None
    sms: ProviderSettings | None = None
    push: ProviderSettings | None = None
    webhook: WebhookSettings | None = None
    ads: FileSettings | None = None
    call_centre: FileSettings | None = None
    direct_mail: FileSettings | None = None
    _doc: LocatedYaml | None = PrivateAttr(default=None)
    _path: Path = PrivateAttr(default=Path(SETTINGS_FILE))

    def rate_limits(self) -> dict[str, RateLimit]:
        """Channel name → rate limit, for the channels that have one."""
        limits = {}
        for name in ("email", "sms", "push", "webhook"):
            section = getattr(self, name)
            if section is not None and section.rate is not None:
                limits[name] = section.rate.limit()
        return limits

    def in_doubt(self) -> dict[str, InDoubt]:
        """Channel name → what to do with a message whose fate a crash left unknown."""
        policies = {}
        for name in ("email", "sms", "push", "webhook"):
            section = getattr(self, name)
            if section is not None:
                policies[name] = section.in_doubt
        return policies

    def backoff(self) -> Backoff:
        """The retry policy."""
        b = self.worker.backoff
        return Backoff(b.base_seconds, max(b.max_seconds, b.base_seconds), b.max_attempts, b.seed)

    def _problem(self, field: str, message: str) -> SpecProblem:
        loc = tuple(field.split("."))
        line = self._doc.line_of(loc) if self._doc is not None else None
        return SpecProblem(self._path, line, field, message)


def load_delivery_settings(root: Path) -> DeliverySettings:
    """Read and check ``delivery.yml`` in the project folder ``root``.

    Raises
    ------
    jingzhun.core.NotFoundError
        There is no ``delivery.yml``.
    jingzhun.core.SpecError
        It is not valid: every problem with its line.
    """
    path = root / SETTINGS_FILE
    if not path.is_file():
        raise NotFoundError(
            f"{path} not found: the worker needs {SETTINGS_FILE} naming the channels to send "
            "through (see the jingzhun.delivery README)"
        )
    doc = load_yaml(path)
    settings, problems = parse_model(DeliverySettings, doc)
    if problems or settings is None:
        raise SpecError(problems)
    settings._doc = doc
    settings._path = path
    return settings


def _env(
    settings: DeliverySettings, environ: Mapping[str, str], field: str, name: str
) -> tuple[str | None, SpecProblem | None]:
    value = environ.get(name, "")
    if not value:
        return None, settings._problem(field, f"environment variable {name} is not set")
    return value, None


def _lookup(
    settings: DeliverySettings,
    section: str,
    lookup: LookupSettings | None,
    environ: Mapping[str, str],
    problems: list[SpecProblem],
) -> HttpMessageLookup | None:
    if lookup is None:
        return None
    headers = {}
    if lookup.auth_env:
        token, problem = _env(settings, environ, f"{section}.lookup.auth_env", lookup.auth_env)
        if problem is not None:
            problems.append(problem)
        elif token is not None:
            headers[lookup.auth_header] = f"{lookup.auth_scheme} {token}".strip()
    return HttpMessageLookup(lookup.url, headers=headers, found_field=lookup.found_field)


def build_channels(
    settings: DeliverySettings,
    *,
    root: Path,
    region: str = "US",
    environ: Mapping[str, str] | None = None,
) -> dict[str, DeliveryChannel]:
    """The channels ``delivery.yml`` configures, with their secrets from the environment.

    Parameters
    ----------
    root
        The project folder (file channels' folders and ``ca_file`` are relative to it).
    region
        Default country for phone numbers (``jingzhun.yml``'s ``region``).
    environ
        Where secrets are read (default: ``os.environ``).

    Raises
    ------
    jingzhun.core.SpecError
        A secret's variable is not set, a secret is too short, a CA file is missing.
    """
    env = os.environ if environ is None else environ
    problems: list[SpecProblem] = []
    channels: dict[str, DeliveryChannel] = {}
    tracker = None
    if settings.tracking is not None:
        t = settings.tracking
        secret, problem = _env(settings, env, "tracking.secret_env", t.secret_env)
        if problem is not None:
            problems.append(problem)
        elif secret is not None and len(secret.encode()) < 16:
            problems.append(
                settings._problem("tracking.secret_env", f"{t.secret_env} is under 16 bytes")
            )
        else:
            tracker = Tracker(
                secret or "",
                tracking_base_url=t.base_url,
                unsubscribe_base_url=t.unsubscribe_url,
                unsubscribe_mailto=t.unsubscribe_mailto,
            )
    if settings.email is not None:
        e = settings.email
        password = None
        if e.username:
            password, problem = _env(settings, env, "email.password_env", e.password_env)
            if problem is not None:
                problems.append(problem)
        context = None
        if e.ca_file:
            ca = root / e.ca_file
            if not ca.is_file():
                problems.append(settings._problem("email.ca_file", f"{ca} does not exist"))
            else:
                context = ssl.create_default_context(cafile=str(ca))
        channels["email"] = SmtpChannel(
            e.host,
            e.port,
            from_address=e.from_address,
            username=e.username or None,
            password=password,
            security=e.security,
            tracker=tracker,
            ssl_context=context,
            timeout=e.timeout_seconds,
            lookup=_lookup(settings, "email", e.lookup, env, problems),
        )
    for name, cls in (("sms", HttpSmsChannel), ("push", HttpPushChannel)):
        p: ProviderSettings | None = getattr(settings, name)
        if p is None:
            continue
        auth_value = None
        if p.auth_env:
            token, problem = _env(settings, env, f"{name}.auth_env", p.auth_env)
            if problem is not None:
                problems.append(problem)
            elif token is not None:
                auth_value = f"{p.auth_scheme} {token}".strip()
        channels[name] = cls(
            p.url,
            body=p.body,
            auth_header=p.auth_header,
            auth_value=auth_value,
            encoding=p.encoding,
            id_field=p.id_field,
            status_map=p.status_map,
            dedupes_by_key=p.dedupes_by_key,
            timeout=p.timeout_seconds,
            lookup=_lookup(settings, name, p.lookup, env, problems),
        )
    if settings.webhook is not None:
        w = settings.webhook
        secret, problem = _env(settings, env, "webhook.secret_env", w.secret_env)
        if problem is not None:
            problems.append(problem)
        elif secret is not None and len(secret.encode()) < 16:
            problems.append(
                settings._problem("webhook.secret_env", f"{w.secret_env} is under 16 bytes")
            )
        else:
            channels["webhook"] = WebhookChannel(
                w.url,
                secret or "",
                timeout=w.timeout_seconds,
                receiver_dedupes=w.receiver_dedupes,
            )
    if settings.ads is not None:
        channels["ads"] = AdAudienceExport(
            root / settings.ads.folder, format=settings.ads.format, region=region
        )
    if settings.call_centre is not None:
        channels["call_centre"] = CallCentreList(root / settings.call_centre.folder, region=region)
    if settings.direct_mail is not None:
        channels["direct_mail"] = DirectMailList(root / settings.direct_mail.folder)
    if problems:
        for channel in channels.values():
            channel.close()
        raise SpecError(problems)
    return channels
