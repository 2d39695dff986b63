"""Email through a real SMTP server on loopback."""

from __future__ import annotations

import pytest

from contactsync.errors import ConfigError, TransientError
from contactsync.notify.email import Attachment, send_email
from contactsync.settings import Settings
from tests.conftest import free_port
from tests.fixtures.smtp import Mailbox


def test_a_message_with_an_attachment_arrives(smtp_server: Mailbox) -> None:
    settings = Settings(smtp_from="reports@example.com")
    send_email(
        settings,
        ["ops@example.com", "crm@example.com"],
        "Import finished: 3 failed",
        "3 rows failed.\n",
        attachments=[Attachment("failed.csv", b"email,code\nx,E620\n")],
    )
    (message,) = smtp_server.wait_for(1)
    assert message["Subject"] == "Import finished: 3 failed"
    assert message["To"] == "ops@example.com, crm@example.com"
    assert message["From"] == "reports@example.com"
    parts = {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()}
    assert parts == {"failed.csv": b"email,code\nx,E620\n"}


def test_no_server_configured_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTACTSYNC_SMTP_HOST", raising=False)
    with pytest.raises(ConfigError) as e:
        send_email(Settings(smtp_host=""), ["a@example.com"], "s", "t")
    assert e.value.code == "E103"


def test_unreachable_server_is_transient() -> None:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout=2)
    with pytest.raises(TransientError) as e:
        send_email(settings, ["a@example.com"], "s", "t")
    assert e.value.code == "E104"
