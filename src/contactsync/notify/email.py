"""Sending email through the configured SMTP server (settings ``smtp_*``)."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from contactsync.errors import ConfigError, TransientError
from contactsync.settings import Settings


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "text/csv"


def send_email(
    settings: Settings,
    to: Sequence[str],
    subject: str,
    text: str,
    *,
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> str:
    """Send one message to ``to``; returns its Message-ID.

    Raises ConfigError (E103) when no SMTP server is configured or it refuses the login, and
    TransientError (E104) when the server cannot be reached or fails: the caller may retry.
    """
    if not settings.smtp_host:
        raise ConfigError(
            "no SMTP server is configured, so no email can be sent",
            code="E103",
        )
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or "localhost")
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for a in attachments:
        maintype, _, subtype = a.mime_type.partition("/")
        message.add_attachment(a.content, maintype=maintype, subtype=subtype, filename=a.filename)
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        smtp: smtplib.SMTP
        if settings.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=settings.smtp_timeout,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout)
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as e:
        raise ConfigError(
            f"the SMTP server {where} refused the login of {settings.smtp_username!r}",
            code="E103",
        ) from e
    except (OSError, smtplib.SMTPException) as e:
        raise TransientError(
            f"could not send email through {where}: {e}",
            code="E104",
        ) from e
    return str(message["Message-ID"])
