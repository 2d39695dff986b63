"""Where exchange files live: a folder on this machine (``file://``) or on an SFTP server.

Both go through fsspec. A ``file://`` folder must lie under ``settings.exchange_local_root``
(symlinks included). An SFTP server must present a host key listed in the job's own
``known_hosts`` text: fsspec's SFTP filesystem would accept any key on first contact, so ours
connects with paramiko's ``RejectPolicy`` and only the job's keys; an unknown key is E612, a
key that differs from the listed one E613 (with both fingerprints in the message).

File names handed to an endpoint are single names inside its folder: a slash or ``..`` is
refused (E611). Errors are the domain's: missing → E616, permissions → E617, a server that
cannot be reached or drops the connection → E615 (TransientError, so the run can be retried).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import posixpath
import secrets
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, Protocol
from urllib.parse import unquote, urlsplit

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fsspec import AbstractFileSystem  # type: ignore[import-untyped]
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]
from fsspec.implementations.sftp import SFTPFileSystem  # type: ignore[import-untyped]

from contactsync.errors import AuthError, ConfigError, ContactsyncError, NotFoundError, TransientError
from contactsync.settings import Settings

PART_MARK = ".part-"  # "<name>.part-<random>": a file being written; never listed
_CHUNK = 1 << 22


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    modified: int  # epoch milliseconds


class Endpoint(Protocol):
    url: str  # with any password removed: safe to show

    def list(self, pattern: str) -> list[RemoteFile]: ...
    def open_read(self, name: str) -> AbstractContextManager[BinaryIO]: ...
    def write_atomic(self, name: str) -> AbstractContextManager[BinaryIO]: ...
    def move(self, name: str, folder: str) -> str: ...
    def checksum(self, name: str) -> str: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Credentials:
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)  # PEM or OpenSSH text
    passphrase: str | None = field(default=None, repr=False)
    known_hosts: str = ""  # known_hosts lines (not secret)


def open_endpoint(url: str, credentials: Credentials, settings: Settings) -> Endpoint:
    """The endpoint at ``url``: ``file:///abs/path``, ``file:relative/path`` (under the exchange
    root) or ``sftp://user@host[:port]/path`` (``/~/path``: relative to the login folder)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return _local_endpoint(url, settings)
    if scheme == "sftp":
        return _sftp_endpoint(url, credentials, settings)
    raise ConfigError(
        f"the endpoint URL {_shown(url)!r} is not a file:// or sftp:// URL "
        "(a client database is given as a database URL with a table or query)",
        code="E610",
    )


# -- one implementation over an fsspec filesystem --------------------------------------------------


class FsEndpoint:
    """A folder on an fsspec filesystem; ``root`` is set for local folders (symlinks checked)."""

    def __init__(self, fs: AbstractFileSystem, folder: str, url: str, root: Path | None = None) -> None:
        self.fs = fs
        self.folder = folder.rstrip("/") or "/"
        self.url = url
        self.root = root

    def __repr__(self) -> str:
        return f"<endpoint {self.url}>"

    def list(self, pattern: str) -> list[RemoteFile]:
        with _errors(self.url, "listing the folder"):
            entries = self.fs.ls(self.folder, detail=True)
        files = []
        for entry in entries:
            name = posixpath.basename(str(entry["name"]).rstrip("/"))
            if entry.get("type") != "file" or PART_MARK in name or not fnmatch.fnmatchcase(name, pattern):
                continue
            files.append(RemoteFile(name, int(entry.get("size") or 0), _millis(entry.get("mtime"))))
        return sorted(files, key=lambda f: f.name)

    @contextmanager
    def open_read(self, name: str) -> Iterator[BinaryIO]:
        path = self._path(name)
        with _errors(self.url, f"opening {name}"):
            raw = _Raw(self.fs.open(path, "rb"), self.url, name, reading=True)
        reader = io.BufferedReader(raw, buffer_size=_CHUNK)
        try:
            yield reader
        except BaseException:
            with suppress(Exception):  # the error that got us here is the one to show
                reader.close()
            raise
        with _errors(self.url, f"closing {name}"):
            reader.close()

    @contextmanager
    def write_atomic(self, name: str) -> Iterator[BinaryIO]:
        path = self._path(name)
        part = f"{path}{PART_MARK}{secrets.token_hex(6)}"
        with _errors(self.url, f"creating {posixpath.basename(part)}"):
            raw = self.fs.open(part, "wb")
        if hasattr(raw, "set_pipelined"):
            raw.set_pipelined(True)  # SFTP: don't wait for each write's answer
        writer = io.BufferedWriter(_Raw(raw, self.url, name), buffer_size=_CHUNK)
        try:
            yield writer
            with _errors(self.url, f"writing {name}"):
                writer.close()
                self.fs.mv(part, path)
        except BaseException:
            self._discard(writer, part)
            raise

    def _discard(self, writer: io.BufferedIOBase, part: str) -> None:
        """Close and remove a part file; the error that got us here is the one to show."""
        with suppress(Exception):
            writer.close()
        with suppress(Exception):
            self.fs.rm_file(part)

    def move(self, name: str, folder: str) -> str:
        source = self._path(name)
        subfolder = "/".join(_segment(s) for s in folder.strip("/").split("/"))
        target_dir = posixpath.join(self.folder, subfolder)
        with _errors(self.url, f"moving {name} to {subfolder}/"):
            self.fs.makedirs(target_dir, exist_ok=True)
            if self.root is not None:
                self._inside_root(Path(target_dir))
            target = _free_name(self.fs, target_dir, name)
            self.fs.mv(source, posixpath.join(target_dir, target))
        return f"{subfolder}/{target}"

    def checksum(self, name: str) -> str:
        digest = hashlib.sha256()
        with self.open_read(name) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def close(self) -> None:
        client = getattr(self.fs, "client", None)
        if client is not None:
            client.close()

    def _path(self, name: str) -> str:
        path = posixpath.join(self.folder, _segment(name))
        if self.root is not None:
            self._inside_root(Path(path))
        return path

    def _inside_root(self, path: Path) -> None:
        assert self.root is not None
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ConfigError(
                f"{path.name} leads outside the exchange root (to {resolved}); "
                "exchange files must stay under CONTACTSYNC_EXCHANGE_LOCAL_ROOT",
                code="E611",
            )


def _segment(name: str) -> str:
    if not name or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise ConfigError(f"{name!r} is not a plain file or folder name (no slash, no '..')", code="E611")
    return name


def _free_name(fs: AbstractFileSystem, folder: str, name: str) -> str:
    """``name``, or ``stem-1.ext``, ``stem-2.ext`` … when it is taken in ``folder``."""
    stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    candidate, n = name, 0
    while fs.exists(posixpath.join(folder, candidate)):
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    return candidate


def _millis(mtime: Any) -> int:
    if isinstance(mtime, datetime):
        return int(mtime.timestamp() * 1000)
    return int(float(mtime or 0) * 1000)


class _Raw(io.RawIOBase):
    """A remote file as a raw stream whose errors are the domain's (so buffered readers work on
    it, and a dropped connection mid-transfer is E615). SFTP reads ask for a whole buffer's worth
    of 32 KB blocks at once (paramiko's ``readv``) instead of one block per round trip."""

    def __init__(self, f: Any, url: str, name: str, *, reading: bool = False) -> None:
        self.f, self.url, self.name_ = f, url, name
        self.offset = 0
        self.size = f.stat().st_size if reading and hasattr(f, "readv") else None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with _errors(self.url, f"reading {self.name_}"):
            if self.size is None:
                data = self.f.read(len(buffer))
            else:
                want = min(len(buffer), self.size - self.offset)
                data = b"".join(self.f.readv([(self.offset, want)])) if want > 0 else b""
                self.offset += len(data)
        buffer[: len(data)] = data
        return len(data)

    def write(self, data: Any) -> int:
        with _errors(self.url, f"writing {self.name_}"):
            self.f.write(bytes(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                with _errors(self.url, f"closing {self.name_}"):
                    self.f.close()
            finally:
                super().close()


@contextmanager
def _errors(url: str, doing: str) -> Iterator[None]:
    """OS, SFTP and SSH errors as the domain's, naming the endpoint and what was being done."""
    try:
        yield
    except ContactsyncError:
        raise
    except FileNotFoundError:
        raise NotFoundError(f"{doing} on {url}: no such file or folder", code="E616") from None
    except PermissionError:
        raise ConfigError(f"{doing} on {url}: permission denied", code="E617") from None
    except (paramiko.SSHException, EOFError, ConnectionError, TimeoutError, socket.gaierror) as e:
        raise TransientError(
            f"{doing} on {url}: the connection failed ({_describe(e)})", code="E615"
        ) from None
    except OSError as e:
        raise ConfigError(f"{doing} on {url}: refused ({_describe(e)})", code="E617") from None


def _describe(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _shown(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}@{netloc}").geturl()


# -- file:// ---------------------------------------------------------------------------------------


def _local_endpoint(url: str, settings: Settings) -> FsEndpoint:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise ConfigError(
            f"the endpoint URL {url!r} is not a local folder URL: write file:///absolute/path "
            "or file:relative/path (relative to the exchange root)",
            code="E610",
        )
    root = Path(settings.exchange_local_root).resolve()
    folder = (root / unquote(parts.path)).resolve()
    if folder != root and root not in folder.parents:
        raise ConfigError(
            f"the folder {folder} is outside the exchange root {root}; "
            "use a folder under CONTACTSYNC_EXCHANGE_LOCAL_ROOT",
            code="E611",
        )
    return FsEndpoint(LocalFileSystem(), str(folder), f"file://{folder}", root=root)


# -- sftp:// ---------------------------------------------------------------------------------------


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"{hostname} not found in known_hosts")
        self.hostname, self.key = hostname, key


class _RejectUnknown(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, keeping the refused key so its fingerprint can be shown."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        raise _UnknownHostKey(hostname, key)


class CheckedSFTPFileSystem(SFTPFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """fsspec's SFTP filesystem that trusts only the given host keys (never auto-adds one)."""

    def __init__(self, host: str, *, host_keys: paramiko.HostKeys, **ssh_kwargs: Any) -> None:
        self._trusted = host_keys
        super().__init__(host, **ssh_kwargs)

    def _connect(self) -> None:
        client = paramiko.SSHClient()
        known = client.get_host_keys()
        for hostname, keys in self._trusted.items():
            for key_type, key in keys.items():
                known.add(hostname, key_type, key)
        client.set_missing_host_key_policy(_RejectUnknown())
        try:
            client.connect(self.host, **self.ssh_kwargs)
            self.ftp = client.open_sftp()
        except BaseException:
            client.close()
            raise
        self.client = client


def _sftp_endpoint(url: str, credentials: Credentials, settings: Settings) -> FsEndpoint:
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port or 22
    except ValueError:
        host = None
    if not host or not parts.username or parts.query or parts.fragment:
        raise ConfigError(
            f"the endpoint URL {_shown(url)!r} is not of the form sftp://user@host[:port]/path",
            code="E610",
        )
    user = unquote(parts.username)
    password = credentials.password or (unquote(parts.password) if parts.password else None)
    path = unquote(parts.path) or "/~"
    shown = f"sftp://{parts.username}@{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
    timeout = settings.exchange_connect_timeout
    ssh_kwargs: dict[str, Any] = {
        "port": port,
        "username": user,
        "password": password,
        "pkey": _private_key(credentials) if credentials.private_key else None,
        "look_for_keys": False,
        "allow_agent": False,
        "timeout": timeout,
        "banner_timeout": timeout,
        "auth_timeout": timeout,
        "channel_timeout": timeout,
    }
    if ssh_kwargs["pkey"] is None and not password:
        raise ConfigError(f"{shown}: give a password or a private key for the SFTP login", code="E610")
    host_keys = _host_keys(credentials.known_hosts)
    fs = _connect(host, port, shown, host_keys, ssh_kwargs)
    try:
        with _errors(shown, "finding the folder"):
            folder = path if not (path == "/~" or path.startswith("/~/")) else path[3:] or "."
            folder = fs.ftp.normalize(folder)  # absolute from here on
    except BaseException:
        fs.client.close()
        raise
    return FsEndpoint(fs, folder, shown)


def _connect(
    host: str, port: int, shown: str, host_keys: paramiko.HostKeys, ssh_kwargs: dict[str, Any]
) -> CheckedSFTPFileSystem:
    address = host if port == 22 else f"[{host}]:{port}"
    try:
        return CheckedSFTPFileSystem(host, host_keys=host_keys, skip_instance_cache=True, **ssh_kwargs)
    except _UnknownHostKey as e:
        raise ConfigError(
            f"{shown}: the server's host key {e.key.get_name()} {e.key.fingerprint} is not in the job's "
            f"known_hosts (no line for {address}); refused",
            code="E612",
            data={"host": address, "key_type": e.key.get_name(), "fingerprint": e.key.fingerprint},
        ) from None
    except paramiko.BadHostKeyException as e:
        raise ConfigError(
            f"{shown}: the server presented host key {e.key.get_name()} {e.key.fingerprint}, "
            f"but the job's known_hosts lists {e.expected_key.get_name()} {e.expected_key.fingerprint} "
            f"for {address}; refused",
            code="E613",
            data={
                "host": address,
                "fingerprint": e.key.fingerprint,
                "expected_fingerprint": e.expected_key.fingerprint,
            },
        ) from None
    except paramiko.AuthenticationException:
        raise AuthError(
            f"{shown}: the server refused the login of {ssh_kwargs['username']!r} with the job's "
            f"{'private key' if ssh_kwargs['pkey'] else 'password'}",
            code="E614",
        ) from None
    except (paramiko.SSHException, EOFError, OSError) as e:
        raise TransientError(f"{shown}: cannot connect ({_describe(e)})", code="E615") from None


def _host_keys(text: str) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "@")):  # @cert-authority / @revoked: not trusted here
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
        except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError):
            entry = None
        except paramiko.pkey.UnknownKeyType:
            continue  # a key type paramiko cannot check: the host needs another line
        if entry is None or entry.key is None:
            raise ConfigError(
                f"known_hosts line {number} is not a 'host key-type base64-key' line", code="E610"
            )
        for hostname in entry.hostnames:
            keys.add(hostname, entry.key.get_name(), entry.key)
    return keys


_KEY_CLASSES: list[tuple[type, type[paramiko.PKey]]] = [
    (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
    (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
    (rsa.RSAPrivateKey, paramiko.RSAKey),
]


def _private_key(credentials: Credentials) -> paramiko.PKey:
    """The job's private key (OpenSSH or PEM text; Ed25519, ECDSA or RSA) for paramiko."""
    text = (credentials.private_key or "").strip() + "\n"
    passphrase = credentials.passphrase or None
    try:
        try:
            loaded = _load_key(text.encode(), passphrase)
        except TypeError:
            if passphrase is None:
                raise ConfigError(
                    "the SFTP private key is encrypted: give its passphrase", code="E610"
                ) from None
            passphrase = None  # a passphrase for a key that has none
            loaded = _load_key(text.encode(), passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            "the SFTP private key cannot be read: it is not an OpenSSH or PEM private key, "
            "or its passphrase is wrong",
            code="E610",
        ) from None
    for crypto_class, key_class in _KEY_CLASSES:
        if isinstance(loaded, crypto_class):
            return key_class.from_private_key(io.StringIO(text), password=passphrase)
    raise ConfigError(
        f"the SFTP private key is a {type(loaded).__name__}: use an Ed25519, ECDSA or RSA key", code="E610"
    )


def _load_key(data: bytes, passphrase: str | None) -> Any:
    password = passphrase.encode() if passphrase else None
    try:
        return serialization.load_ssh_private_key(data, password)
    except ValueError:
        return serialization.load_pem_private_key(data, password)
