"""Every channel against a real receiver: aiosmtpd on 127.0.0.1 (plain, STARTTLS with a
self-signed certificate, implicit TLS, AUTH PLAIN and LOGIN), a local HTTP server for SMS, push
and webhooks, and the files of the list channels. ``check_channel`` is the contract each passes.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import pytest
from sinks import HttpSink, Request, SmtpSink, make_certificate, ok_json, server_context

from jingzhun.core import EngineError
from jingzhun.delivery import (
    AdAudienceExport,
    CallCentreList,
    DeliveryChannel,
    DirectMailList,
    HttpPushChannel,
    HttpSmsChannel,
    OutboundMessage,
    SendResult,
    SendStatus,
    SmtpChannel,
    Tracker,
    WebhookChannel,
    message_id,
    scrub,
    sha256_hex,
    sign_token,
    verify_token,
    verify_webhook,
)

pytestmark = pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")

SECRET = "tracking-secret-0123456789"
HOOK_SECRET = "webhook-secret-0123456789"


# -- the contract -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One message as a receiver holds it."""

    recipient: str
    text: str
    message_id: str | None


class Sink(Protocol):
    def received(self) -> list[Seen]: ...

    def expect(self, message: OutboundMessage) -> Seen: ...


def _message(key: str, recipient: str, word: str) -> OutboundMessage:
    return OutboundMessage(
        idempotency_key=key,
        recipient=recipient,
        customer_key=key.split(":")[1],
        campaign="contract",
        subject=f"Offer {word}",
        html=f"<html><body><p>Hello {word}</p></body></html>",
        text=f"Hello {word}",
        body=f"Hello {word}",
        metadata={"name": "Ann Lee", "variant": "a"},
    )


def check_channel(channel: DeliveryChannel, sink: Sink, recipients: tuple[str, str]) -> None:
    """What every channel guarantees: a message arrives once, at its recipient, with its
    content and its key; sending the same key again does not reach the receiver again;
    ``already_sent`` never claims a message that was not sent.
    """
    kind = channel.kind
    first = _message(f"contract:c1:{kind}", recipients[0], "plum7")
    second = _message(f"contract:c2:{kind}", recipients[1], "fig3")

    result = channel.send(first)
    assert result.status is SendStatus.SENT, result
    got = sink.received()
    assert len(got) == 1, got
    want = sink.expect(first)
    assert got[0].recipient == want.recipient
    assert want.text in got[0].text
    assert got[0].message_id == want.message_id

    assert channel.send(first) == result  # the same key: the first answer, no second send
    assert len(sink.received()) == 1

    assert channel.send(second).status is SendStatus.SENT
    got = sink.received()
    assert sorted(s.recipient for s in got) == sorted(
        sink.expect(m).recipient for m in (first, second)
    )
    assert channel.already_sent(first.idempotency_key) in (True, None)
    assert channel.already_sent(f"contract:never:{kind}") in (False, None)
    channel.close()
    assert channel.send(second).status is SendStatus.SENT  # after close: still not twice
    assert len(sink.received()) == 2


class SmtpView:
    def __init__(self, smtp: SmtpSink, channel: SmtpChannel) -> None:
        self.smtp, self.channel = smtp, channel

    def received(self) -> list[Seen]:
        seen = []
        for m in self.smtp.messages:
            text = m.message.get_body(("plain",))
            assert text is not None
            seen.append(Seen(m.rcpt_tos[0], str(text.get_content()), m.message_id))
        return seen

    def expect(self, message: OutboundMessage) -> Seen:
        return Seen(
            message.recipient, message.text, self.channel.message_id_for(message.idempotency_key)
        )


class HttpView:
    def __init__(
        self,
        http: HttpSink,
        read: Callable[[Request], tuple[str, str]],
    ) -> None:
        self.http, self.read = http, read

    def received(self) -> list[Seen]:
        seen = []
        for r in self.http.posts():
            recipient, text = self.read(r)
            seen.append(Seen(recipient, text, r.headers["Idempotency-Key"]))
        return seen

    def expect(self, message: OutboundMessage) -> Seen:
        return Seen(message.recipient, message.body, message_id(message.idempotency_key))


class FileView:
    def __init__(
        self, path: Path, read: Callable[[dict[str, str]], Seen], expect: Callable[..., Seen]
    ):
        self.path, self.read, self._expect = path, read, expect

    def received(self) -> list[Seen]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8", newline="") as handle:
            return [self.read(row) for row in csv.DictReader(handle)]

    def expect(self, message: OutboundMessage) -> Seen:
        return self._expect(message)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


SMTP_SETUPS = ["plain", "starttls_plain_auth", "starttls_login_auth", "implicit_tls"]


@pytest.mark.parametrize("setup", SMTP_SETUPS)
def test_smtp_channel_passes_the_contract(
    setup: str, certificate: tuple[Path, Path], client_tls: ssl.SSLContext
) -> None:
    cert, key = certificate
    server: dict[str, Any] = {}
    client: dict[str, Any] = {"security": "none"}
    if setup.startswith("starttls"):
        server = {"starttls": server_context(cert, key), "users": {"mailer": "s3cret"}}
        if setup == "starttls_login_auth":
            server["auth_exclude"] = ("PLAIN",)  # smtplib prefers PLAIN when offered
        client = {"security": "starttls", "username": "mailer", "password": "s3cret"}
        client["ssl_context"] = client_tls
    elif setup == "implicit_tls":
        server = {"implicit_tls": server_context(cert, key)}
        client = {"security": "tls", "ssl_context": client_tls}
    with SmtpSink(**server) as smtp:
        channel = SmtpChannel(
            "127.0.0.1", smtp.port, from_address="Shop <news@shop.example>", **client
        )
        check_channel(channel, SmtpView(smtp, channel), ("ann@example.org", "bo@example.org"))
        assert all(smtp.tls_seen) is (setup != "plain")
        if "auth" in setup:
            assert smtp.auth_seen == (["LOGIN"] if "login" in setup else ["PLAIN"])
        assert len(smtp.sessions) == 1  # both messages went through one SMTP session


def test_http_sms_and_push_pass_the_contract() -> None:
    with HttpSink() as http:
        sms = HttpSmsChannel(
            f"{http.url}/sms",
            body={"to": "{address}", "text": "{body}", "ref": "{message_id}"},
            auth_value="Bearer sms-token",
        )
        check_channel(
            sms,
            HttpView(http, lambda r: (r.json()["to"], r.json()["text"])),
            ("+8613800138000", "+8613900139000"),
        )
        assert {r.headers["Authorization"] for r in http.posts()} == {"Bearer sms-token"}
        assert [r.json()["ref"] for r in http.posts()] == [
            r.headers["Idempotency-Key"] for r in http.posts()
        ]
    with HttpSink() as http:
        push = HttpPushChannel(
            f"{http.url}/push",
            body={
                "include_aliases": {"external_id": ["{address}"]},
                "headings": {"en": "{subject}"},
                "contents": {"en": "{body}"},
            },
        )
        check_channel(
            push,
            HttpView(
                http,
                lambda r: (
                    r.json()["include_aliases"]["external_id"][0],
                    r.json()["contents"]["en"],
                ),
            ),
            ("ck_001", "ck_002"),
        )
        assert http.posts()[0].json()["headings"] == {"en": "Offer plum7"}


def test_webhook_passes_the_contract_and_is_signed() -> None:
    with HttpSink() as http:
        hook = WebhookChannel(f"{http.url}/hook", HOOK_SECRET)

        def read(r: Request) -> tuple[str, str]:
            assert verify_webhook(
                HOOK_SECRET,
                r.body,
                r.headers["X-Jingzhun-Timestamp"],
                r.headers["X-Jingzhun-Signature"],
            )
            return r.json()["recipient"], r.json()["text"]

        view = HttpView(http, read)
        check_channel(hook, view, ("ck_001", "ck_002"))
        request = http.posts()[0]
        # the signature is HMAC-SHA256 over "timestamp.body", hex, as documented
        stamp = request.headers["X-Jingzhun-Timestamp"]
        digest = hmac.new(
            HOOK_SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256
        ).hexdigest()
        assert request.headers["X-Jingzhun-Signature"] == f"sha256={digest}"
        assert request.headers["X-Jingzhun-Id"] == message_id("contract:c1:webhook")
        assert not verify_webhook(HOOK_SECRET, request.body + b" ", stamp, f"sha256={digest}")
        assert not verify_webhook("another-secret-0123456", request.body, stamp, f"sha256={digest}")
        late = float(stamp) + 301
        assert not verify_webhook(HOOK_SECRET, request.body, stamp, f"sha256={digest}", now=late)


def test_file_channels_pass_the_contract(tmp_path: Path) -> None:
    calls = CallCentreList(tmp_path / "calls", region="CN")
    check_channel(
        calls,
        FileView(
            calls.path_for("contract"),
            lambda row: Seen(row["phone"], row["talking_points"], row["message_id"]),
            lambda m: Seen(m.recipient, m.body, message_id(m.idempotency_key)),
        ),
        ("+8613800138000", "+8613900139000"),
    )
    mail = DirectMailList(tmp_path / "mail")
    check_channel(
        mail,
        FileView(
            mail.path_for("contract"),
            lambda row: Seen(row["address"], row["message"], row["message_id"]),
            lambda m: Seen(m.recipient, m.body, message_id(m.idempotency_key)),
        ),
        ("1 High St, London", "2 Nanjing Rd, Shanghai"),
    )
    ads = AdAudienceExport(tmp_path / "ads", format="google")
    check_channel(
        ads,
        FileView(
            ads.path_for("contract"),
            lambda row: Seen(row["Email"], "", None),
            lambda m: Seen(sha256_hex(m.recipient), "", None),
        ),
        ("ann@example.org", "bo@example.org"),
    )


def test_the_contract_check_catches_a_channel_that_sends_twice() -> None:
    class Forgetful(DeliveryChannel):
        kind = "forgetful"

        def __init__(self) -> None:
            super().__init__()
            self.out: list[OutboundMessage] = []

        def send(self, message: OutboundMessage) -> SendResult:  # no memory of earlier sends
            return self._deliver(message)

        def _deliver(self, message: OutboundMessage) -> SendResult:
            self.out.append(message)
            return SendResult(SendStatus.SENT)

    channel = Forgetful()

    class View:
        def received(self) -> list[Seen]:
            return [Seen(m.recipient, m.text, m.idempotency_key) for m in channel.out]

        def expect(self, message: OutboundMessage) -> Seen:
            return Seen(message.recipient, message.text, message.idempotency_key)

    with pytest.raises(AssertionError):
        check_channel(channel, View(), ("a@example.org", "b@example.org"))


# -- e-mail: MIME, unsubscribe headers, tracking ----------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


def _tracker() -> Tracker:
    return Tracker(
        SECRET,
        tracking_base_url="https://t.shop.example",
        unsubscribe_base_url="https://t.shop.example/unsubscribe",
        unsubscribe_mailto="unsubscribe@shop.example",
    )


def test_email_is_multipart_with_rfc8058_unsubscribe_and_tracked_links(smtp: SmtpSink) -> None:
    channel = SmtpChannel(
        "127.0.0.1",
        smtp.port,
        from_address="精准 Shop <news@shop.example>",
        security="none",
        tracker=_tracker(),
    )
    html = (
        '<html><body><p>你好 Ann, <a href="https://shop.example/p?id=1&amp;ref=mail">see</a>'
        ' or <a href="mailto:help@shop.example">write</a>.</p></body></html>'
    )
    message = OutboundMessage(
        "spring:ck_1:email",
        "ann@example.org",
        "ck_1",
        "spring",
        subject="春季 offer for you 🌸",
        html=html,
        text="你好 Ann\n.a line starting with a dot\n",
        headers={"X-Campaign": "spring"},
    )
    assert channel.send(message).status is SendStatus.SENT
    channel.close()
    (received,) = smtp.messages
    parsed = received.message
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Subject"] == "春季 offer for you 🌸"
    assert parsed["From"].addresses[0].display_name == "精准 Shop"
    assert parsed["Message-ID"] == channel.message_id_for("spring:ck_1:email")
    assert parsed["Message-ID"] == f"<{message_id('spring:ck_1:email')}@shop.example>"
    assert parsed["X-Campaign"] == "spring"
    plain = parsed.get_body(("plain",))
    assert plain is not None  # CRLF on the wire, as the standard library's own messages
    assert plain.get_content().replace("\r\n", "\n") == "你好 Ann\n.a line starting with a dot\n"

    # RFC 2369 List-Unsubscribe with a mailto and an HTTPS link; RFC 8058 one-click
    links = [part.strip().strip("<>") for part in str(parsed["List-Unsubscribe"]).split(",")]
    assert links[0].startswith("mailto:unsubscribe@shop.example?subject=unsubscribe%20")
    assert links[1].startswith("https://t.shop.example/unsubscribe/")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = links[1].rsplit("/", 1)[1]
    assert verify_token(SECRET, token) == verify_token(SECRET, token)
    verified = verify_token(SECRET, token)
    assert verified is not None and (verified.kind, verified.idempotency_key) == (
        "u",
        "spring:ck_1:email",
    )

    body = parsed.get_body(("html",))
    assert body is not None
    content = str(body.get_content())
    assert "你好 Ann" in content
    assert 'href="mailto:help@shop.example"' in content  # only http(s) links are redirected
    click = content.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert click.startswith("https://t.shop.example/c/")
    target = parse_qs(urlsplit(click).query)["u"][0]
    assert target == "https://shop.example/p?id=1&ref=mail"
    click_token = urlsplit(click).path.rsplit("/", 1)[1]
    clicked = verify_token(SECRET, click_token, url=target)
    assert clicked is not None and clicked.kind == "c"
    assert verify_token(SECRET, click_token, url="https://evil.example/") is None
    pixel = content.split('<img src="', 1)[1].split('"', 1)[0]
    assert content.index("<img") < content.index("</body>")
    opened = verify_token(SECRET, pixel.rsplit("/", 1)[1].removesuffix(".gif"))
    assert opened is not None and opened.kind == "o"


def test_tokens_refuse_a_wrong_secret_or_a_changed_token() -> None:
    token = sign_token(SECRET, "c", "k:1:email", url="https://shop.example/")
    assert verify_token(SECRET, token, url="https://shop.example/") is not None
    assert verify_token("another-secret-012345", token, url="https://shop.example/") is None
    assert verify_token(SECRET, token[:-2] + "AA", url="https://shop.example/") is None
    assert verify_token(SECRET, "not-a-token") is None
    with pytest.raises(ValueError, match="16 bytes"):
        sign_token("short", "o", "k")


def test_smtp_replies_map_to_bounce_soft_fail_and_failure() -> None:
    def rcpt(address: str) -> str | None:
        if address.startswith("gone@"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.startswith("busy@"):
            return "451 4.7.1 greylisted, try again later"
        return None

    def data(message: Any) -> str | None:
        return "552 5.3.4 message too big" if "huge" in str(message["Subject"]) else None

    with SmtpSink(rcpt_reply=rcpt, data_reply=data) as sink:
        channel = SmtpChannel(
            "127.0.0.1", sink.port, from_address="news@shop.example", security="none"
        )

        def send(address: str, subject: str = "hi") -> SendResult:
            return channel.send(
                OutboundMessage(f"c:{address}:email", address, subject=subject, text="x")
            )

        gone = send("gone@example.org")
        assert gone.status is SendStatus.HARD_BOUNCE
        assert "gone@example.org" not in gone.detail and "550 5.1.1" in gone.detail
        assert send("busy@example.org").status is SendStatus.SOFT_FAIL
        assert send("ann@example.org", "huge").status is SendStatus.FAILED
        assert send("bo@example.org").status is SendStatus.SENT  # the session survived
        assert send("not an address").status is SendStatus.FAILED
        channel.close()
        assert [m.rcpt_tos for m in sink.messages] == [["bo@example.org"]]
        assert len(sink.sessions) == 1


def test_smtp_configuration_errors_stop_the_channel(
    certificate: tuple[Path, Path], client_tls: ssl.SSLContext
) -> None:
    cert, key = certificate
    message = OutboundMessage("c:1:email", "ann@example.org", text="x")
    with SmtpSink(starttls=server_context(cert, key), users={"mailer": "right"}) as sink:
        wrong = SmtpChannel(
            "127.0.0.1",
            sink.port,
            from_address="news@shop.example",
            username="mailer",
            password="wrong-password",
            ssl_context=client_tls,
        )
        with pytest.raises(EngineError, match="refused the login of 'mailer'") as info:
            wrong.send(message)
        assert "wrong-password" not in str(info.value)
        untrusted = SmtpChannel("127.0.0.1", sink.port, from_address="news@shop.example")
        with pytest.raises(EngineError, match="not trusted"):
            untrusted.send(message)
        assert sink.messages == []
    with SmtpSink() as plain:
        insist = SmtpChannel("127.0.0.1", plain.port, from_address="news@shop.example")
        with pytest.raises(EngineError, match="does not offer STARTTLS"):
            insist.send(message)


def test_smtp_server_down_is_a_soft_failure_that_stops_the_channel() -> None:
    with SmtpSink() as sink:
        port = sink.port
    channel = SmtpChannel("127.0.0.1", port, from_address="news@shop.example", security="none")
    result = channel.send(OutboundMessage("c:1:email", "ann@example.org", text="x"))
    assert result.status is SendStatus.SOFT_FAIL and result.provider_down


# -- HTTP providers ----------------------------------------------------------------------------


def test_http_replies_map_to_statuses_and_retry_after() -> None:
    answers = {
        "+1": (400, {}, b'{"error": "bad request"}'),
        "+2": (410, {}, b'{"error": "number gone"}'),
        "+3": (429, {"Retry-After": "7"}, b"slow down"),
        "+4": (503, {}, b"down"),
        "+5": (202, {"Content-Type": "application/json"}, b'{"data": {"sid": "SM42"}}'),
    }

    def respond(request: Request) -> tuple[int, dict[str, str], bytes]:
        return answers[request.json()["to"]]

    with HttpSink(respond) as http:
        sms = HttpSmsChannel(
            http.url, body={"to": "{address}", "text": "{body}"}, id_field="data.sid"
        )

        def send(number: str) -> SendResult:
            return sms.send(OutboundMessage(f"c:{number}:sms", number, body="hi"))

        assert send("+1").status is SendStatus.FAILED
        assert send("+2").status is SendStatus.HARD_BOUNCE
        slow = send("+3")
        assert slow.status is SendStatus.SOFT_FAIL and slow.retry_after == 7.0
        assert send("+4").status is SendStatus.SOFT_FAIL
        assert send("+5") == SendResult(SendStatus.SENT, provider_id="SM42")
        sms.close()


def test_http_refused_credentials_timeouts_and_forms() -> None:
    def respond(request: Request) -> tuple[int, dict[str, str], bytes]:
        if request.headers.get("Authorization") != "Bearer good":
            return 401, {}, b"unauthorized"
        if "slow" in request.body.decode():
            time.sleep(0.5)
        return ok_json(request)

    with HttpSink(respond) as http:
        bad = HttpSmsChannel(http.url, body={"to": "{address}"}, auth_value="Bearer nope")
        with pytest.raises(EngineError, match=r"refused our credentials \(HTTP 401\)"):
            bad.send(OutboundMessage("c:1:sms", "+1", body="hi"))
        form = HttpSmsChannel(
            http.url,
            body={"To": "{address}", "Body": "{body}"},
            encoding="form",
            auth_value="Bearer good",
            timeout=0.2,
        )
        assert form.send(OutboundMessage("c:2:sms", "+44 20 7946 0000", body="hi")).status is (
            SendStatus.SENT
        )
        assert parse_qs(http.posts()[-1].body.decode()) == {
            "To": ["+44 20 7946 0000"],
            "Body": ["hi"],
        }
        timed_out = form.send(OutboundMessage("c:3:sms", "+1", body="slow"))
        assert timed_out.status is SendStatus.SOFT_FAIL and not timed_out.provider_down
    down = HttpSmsChannel(http.url, body={"to": "{address}", "text": "{body}"})
    refused = down.send(OutboundMessage("c:4:sms", "+1", body="hi"))
    assert refused.status is SendStatus.SOFT_FAIL and refused.provider_down
    with pytest.raises(ValueError, match="placeholders are"):
        HttpSmsChannel(http.url, body={"to": "{phone}"})


def test_scrub_removes_addresses_and_numbers() -> None:
    text = "550 <ann.lee@example.org>: unknown; call +86 138 0013 8000 or ann.lee@example.org"
    assert (
        scrub(text, "ann.lee@example.org")
        == "550 <<recipient>>: unknown; call <number> or <recipient>"
    )
    assert "bo@x.example" not in scrub("rejected bo@x.example")


def test_headers_cannot_be_injected_or_overridden(smtp: SmtpSink) -> None:
    channel = SmtpChannel("127.0.0.1", smtp.port, from_address="news@shop.example", security="none")
    sneaky = OutboundMessage(
        "c:1:email", "ann@example.org", subject="Hi\r\nBcc: all@example.org", text="x"
    )
    assert channel.send(sneaky).status is SendStatus.SENT
    reserved = OutboundMessage(
        "c:2:email", "bo@example.org", text="x", headers={"Message-ID": "<mine@x>"}
    )
    refused = channel.send(reserved)
    assert refused.status is SendStatus.FAILED and "set by delivery" in refused.detail
    channel.close()
    (received,) = smtp.messages
    assert received.message["Bcc"] is None
    assert received.message["Subject"] == "Hi Bcc: all@example.org"  # one line, one header
