"""Credentials at rest: Fernet-encrypted, with key rotation, and masked on the way out.

Keys come from ``CONTACTSYNC_SECRET_KEYS`` (comma-separated; the first one encrypts, every
one decrypts) or, for the embedded default, from a key file created on first use with mode
0600. Rotating: put a new key first and keep the old ones; a source's credentials are
re-sealed with the new key whenever they are saved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from contactsync.errors import ConfigError
from contactsync.settings import Settings

MASK = "********"


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigError("no secret key configured", code="E100")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise ConfigError(
                "CONTACTSYNC_SECRET_KEYS holds a key that is not a Fernet key "
                "(32 url-safe base64 bytes, as cryptography's Fernet.generate_key() makes)",
                code="E100",
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secret_keys.strip():
            return cls([k.strip().encode() for k in settings.secret_keys.split(",") if k.strip()])
        return cls([_key_file(Path(settings.secret_key_file))])

    def seal(self, values: Mapping[str, str]) -> str:
        return self._fernet.encrypt(orjson.dumps(dict(values))).decode()

    def open(self, token: str) -> dict[str, str]:
        if not token:
            return {}
        try:
            data: dict[str, str] = orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ConfigError(
                "stored credentials cannot be decrypted with the configured keys; "
                "restore the key that encrypted them in CONTACTSYNC_SECRET_KEYS",
                code="E100",
            ) from None
        return data


def new_key() -> str:
    return Fernet.generate_key().decode()


def _key_file(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(new_key())
    return path.read_text().strip().encode()


def mask(values: Mapping[str, object]) -> dict[str, str]:
    """What any output shows of credentials: that they are set, never their value."""
    return {k: MASK for k, v in values.items() if v not in (None, "")}
