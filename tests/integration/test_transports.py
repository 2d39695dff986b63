"""Exchange endpoints on a local folder and on a real OpenSSH SFTP server (host keys checked)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from contactsync.errors import AuthError, ConfigError, NotFoundError, TransientError
from contactsync.exchange.transports import Credentials, Endpoint, open_endpoint
from contactsync.settings import Settings
from tests.conftest import free_port
from tests.fixtures.sftp import SftpServer


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    root = tmp_path / "exchange"
    root.mkdir()
    return Settings(exchange_local_root=str(root), exchange_connect_timeout=10)


@pytest.fixture
def key_login(sftp_server: SftpServer) -> Credentials:
    return Credentials(private_key=sftp_server.private_key, known_hosts=sftp_server.known_hosts)


@pytest.fixture(params=["file", "sftp"])
def place(request: pytest.FixtureRequest, settings: Settings) -> Iterator[tuple[Endpoint, Path]]:
    """An endpoint on an empty folder, and that folder as this machine sees it."""
    if request.param == "file":
        folder = Path(settings.exchange_local_root) / "acme" / "in"
        folder.mkdir(parents=True)
        endpoint = open_endpoint("file:acme/in", Credentials(), settings)
    else:
        server: SftpServer = request.getfixturevalue("sftp_server")
        folder = server.root / "in"
        folder.mkdir()
        endpoint = open_endpoint(server.url("in"), request.getfixturevalue("key_login"), settings)
    try:
        yield endpoint, folder
    finally:
        endpoint.close()


def test_lists_files_by_glob_sorted_by_name(place: tuple[Endpoint, Path]) -> None:
    endpoint, folder = place
    for name in ["contacts_20240302.csv", "contacts_20240301.csv", "other.csv", "contacts_x.xml"]:
        (folder / name).write_bytes(b"email\nx@example.com\n")
    (folder / "contacts_sub.csv").mkdir()  # a folder is not a file
    (folder / "contacts_20240303.csv.part-abc123").write_bytes(b"half")  # being written

    files = endpoint.list("contacts_*.csv")

    assert [f.name for f in files] == ["contacts_20240301.csv", "contacts_20240302.csv"]
    assert files[0].size == len(b"email\nx@example.com\n")
    assert abs(files[0].modified - (folder / "contacts_20240301.csv").stat().st_mtime * 1000) < 2000


def test_reads_a_file_line_by_line(place: tuple[Endpoint, Path]) -> None:
    endpoint, folder = place
    lines = [f"row {i},{'x' * (i % 97)}\n".encode() for i in range(20_000)]
    (folder / "big.csv").write_bytes(b"".join(lines))

    with endpoint.open_read("big.csv") as f:
        assert f.readline() == lines[0]
        assert f.read() == b"".join(lines[1:])


def test_atomic_write_appears_whole_under_its_name(place: tuple[Endpoint, Path]) -> None:
    endpoint, folder = place
    (folder / "out.csv").write_bytes(b"old content")

    with endpoint.write_atomic("out.csv") as f:
        f.write(b"email\n")
        assert (folder / "out.csv").read_bytes() == b"old content"  # not yet replaced
        assert [p.name for p in folder.iterdir() if ".part-" in p.name] != []
        f.write(b"x@example.com\n" * 50_000)

    assert (folder / "out.csv").read_bytes() == b"email\n" + b"x@example.com\n" * 50_000
    assert sorted(p.name for p in folder.iterdir()) == ["out.csv"]


def test_atomic_write_that_fails_leaves_no_file(place: tuple[Endpoint, Path]) -> None:
    endpoint, folder = place

    class WriterFailed(Exception):
        pass

    with pytest.raises(WriterFailed), endpoint.write_atomic("out.csv") as f:
        f.write(b"email\nx@example.com\n" * 1000)
        raise WriterFailed

    assert list(folder.iterdir()) == []


def test_moves_processed_files_into_subfolders(place: tuple[Endpoint, Path]) -> None:
    endpoint, folder = place
    (folder / "a.csv").write_bytes(b"first")

    assert endpoint.move("a.csv", "done") == "done/a.csv"
    (folder / "a.csv").write_bytes(b"second")
    assert endpoint.move("a.csv", "done") == "done/a-1.csv"  # a name clash gets a suffix
    (folder / "b.csv").write_bytes(b"bad")
    assert endpoint.move("b.csv", "failed") == "failed/b.csv"

    assert (folder / "done" / "a.csv").read_bytes() == b"first"
    assert (folder / "done" / "a-1.csv").read_bytes() == b"second"
    assert (folder / "failed" / "b.csv").read_bytes() == b"bad"
    assert endpoint.list("*") == []


def test_checksum_is_the_sha256_of_the_content(place: tuple[Endpoint, Path]) -> None:
    endpoint, folder = place
    content = os.urandom(3 * 1024 * 1024 + 17)
    (folder / "f.bin").write_bytes(content)

    assert endpoint.checksum("f.bin") == hashlib.sha256(content).hexdigest()


def test_missing_file_is_not_found(place: tuple[Endpoint, Path]) -> None:
    endpoint, _ = place
    with pytest.raises(NotFoundError) as e, endpoint.open_read("nope.csv"):
        pass
    assert e.value.code == "E616"


@pytest.mark.parametrize("name", ["../secret.csv", "sub/x.csv", "..", ""])
def test_names_cannot_leave_the_folder(place: tuple[Endpoint, Path], name: str) -> None:
    endpoint, _ = place
    with pytest.raises(ConfigError) as e, endpoint.open_read(name):
        pass
    assert e.value.code == "E611"
    with pytest.raises(ConfigError), endpoint.write_atomic(name):
        pass
    with pytest.raises(ConfigError):
        endpoint.move("x.csv", "../elsewhere")


# -- file:// ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file:../outside", "file:///etc", "file:acme/../../outside"])
def test_local_folder_must_be_under_the_exchange_root(settings: Settings, url: str) -> None:
    with pytest.raises(ConfigError) as e:
        open_endpoint(url, Credentials(), settings)
    assert e.value.code == "E611"


def test_local_absolute_url_under_the_root_is_accepted(settings: Settings) -> None:
    folder = Path(settings.exchange_local_root).resolve() / "abs"
    folder.mkdir()
    (folder / "x.csv").write_bytes(b"x")
    endpoint = open_endpoint(f"file://{folder}", Credentials(), settings)
    assert [f.name for f in endpoint.list("*.csv")] == ["x.csv"]
    assert endpoint.url == f"file://{folder}"


def test_symlinks_out_of_the_root_are_refused(settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes(b"secret")
    root = Path(settings.exchange_local_root)
    (root / "linked").symlink_to(outside)
    (root / "in").mkdir()
    (root / "in" / "secret.csv").symlink_to(outside / "secret.csv")

    with pytest.raises(ConfigError) as e:
        open_endpoint("file:linked", Credentials(), settings)
    assert e.value.code == "E611"

    endpoint = open_endpoint("file:in", Credentials(), settings)
    with pytest.raises(ConfigError) as e, endpoint.open_read("secret.csv"):
        pass
    assert e.value.code == "E611"


def test_other_schemes_and_hosts_are_refused(settings: Settings) -> None:
    for url in ["ftp://host/x", "file://otherhost/x", "s3://bucket/x"]:
        with pytest.raises(ConfigError) as e:
            open_endpoint(url, Credentials(), settings)
        assert e.value.code == "E610"


# -- sftp:// ---------------------------------------------------------------------------------------


def test_sftp_unknown_host_key_is_refused(sftp_server: SftpServer, settings: Settings) -> None:
    with pytest.raises(ConfigError) as e:
        open_endpoint(sftp_server.url(), Credentials(private_key=sftp_server.private_key), settings)
    assert e.value.code == "E612"
    assert "SHA256:" in e.value.message
    assert e.value.data is not None and e.value.data["host"] == f"[127.0.0.1]:{sftp_server.port}"


def test_sftp_changed_host_key_is_refused_with_its_fingerprint(
    sftp_server: SftpServer, settings: Settings
) -> None:
    served = _fingerprint(sftp_server.known_hosts)
    listed = _fingerprint(sftp_server.other_known_hosts())
    credentials = Credentials(
        private_key=sftp_server.private_key, known_hosts=sftp_server.other_known_hosts()
    )
    with pytest.raises(ConfigError) as e:
        open_endpoint(sftp_server.url(), credentials, settings)
    assert e.value.code == "E613"
    assert served in e.value.message
    assert listed != served


def test_sftp_host_keys_come_only_from_the_job(
    sftp_server: SftpServer, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known_hosts file of the process (~/.ssh) is not trusted: only the job's lines are."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(sftp_server.known_hosts)
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(ConfigError) as e:
        open_endpoint(sftp_server.url(), Credentials(private_key=sftp_server.private_key), settings)
    assert e.value.code == "E612"


def test_sftp_wrong_key_is_an_auth_error(sftp_server: SftpServer, settings: Settings) -> None:
    credentials = Credentials(
        private_key=sftp_server.other_private_key(), known_hosts=sftp_server.known_hosts
    )
    with pytest.raises(AuthError) as e:
        open_endpoint(sftp_server.url(), credentials, settings)
    assert e.value.code == "E614"


def test_sftp_wrong_password_is_an_auth_error_and_never_shown(
    sftp_server: SftpServer, settings: Settings
) -> None:
    password = "not-the-password-4711"
    credentials = Credentials(password=password, known_hosts=sftp_server.known_hosts)
    with pytest.raises(AuthError) as e:
        open_endpoint(sftp_server.url(), credentials, settings)
    assert e.value.code == "E614"
    assert password not in str(e.value) and password not in repr(credentials)

    in_url = sftp_server.url().replace("@", f":{password}@", 1)
    with pytest.raises(AuthError) as e:
        open_endpoint(in_url, Credentials(known_hosts=sftp_server.known_hosts), settings)
    assert password not in str(e.value)


def test_sftp_refused_connection_is_transient(sftp_server: SftpServer, settings: Settings) -> None:
    url = f"sftp://{sftp_server.username}@127.0.0.1:{free_port()}/data"
    credentials = Credentials(private_key=sftp_server.private_key, known_hosts=sftp_server.known_hosts)
    with pytest.raises(TransientError) as e:
        open_endpoint(url, credentials, settings)
    assert e.value.code == "E615"


def test_sftp_encrypted_key_needs_its_passphrase(sftp_server: SftpServer, settings: Settings) -> None:
    key = sftp_server.workdir / f"encrypted-{sftp_server.root.name}"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "sesame", "-f", str(key)], check=True, capture_output=True
    )
    with (sftp_server.workdir / "authorized_keys").open("a") as f:
        f.write(Path(f"{key}.pub").read_text())
    private = key.read_text()

    with pytest.raises(ConfigError) as e:
        open_endpoint(
            sftp_server.url(), Credentials(private_key=private, known_hosts=sftp_server.known_hosts), settings
        )
    assert e.value.code == "E610"
    with pytest.raises(ConfigError):
        open_endpoint(
            sftp_server.url(),
            Credentials(private_key=private, passphrase="wrong", known_hosts=sftp_server.known_hosts),
            settings,
        )
    endpoint = open_endpoint(
        sftp_server.url(),
        Credentials(private_key=private, passphrase="sesame", known_hosts=sftp_server.known_hosts),
        settings,
    )
    assert endpoint.list("*") == []
    endpoint.close()


def test_sftp_path_relative_to_the_login_folder(
    sftp_server: SftpServer, key_login: Credentials, settings: Settings
) -> None:
    (sftp_server.root / "x.csv").write_bytes(b"x")
    # the server starts sessions in the folder above the test's root
    url = f"sftp://{sftp_server.username}@127.0.0.1:{sftp_server.port}/~/{sftp_server.root.name}"
    endpoint = open_endpoint(url, key_login, settings)
    assert [f.name for f in endpoint.list("*")] == ["x.csv"]
    assert endpoint.url == url
    endpoint.close()


def test_sftp_missing_folder_is_not_found(
    sftp_server: SftpServer, key_login: Credentials, settings: Settings
) -> None:
    endpoint = open_endpoint(sftp_server.url("absent"), key_login, settings)
    with pytest.raises(NotFoundError) as e:
        endpoint.list("*")
    assert e.value.code == "E616"
    endpoint.close()


def _fingerprint(known_hosts_line: str) -> str:
    blob = base64.b64decode(known_hosts_line.split()[2])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# paramiko's read-ahead thread dies with the connection and says so on stderr; the reader gets E615
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_sftp_connection_dropped_mid_read_is_transient(
    sftp_server: SftpServer, key_login: Credentials, settings: Settings
) -> None:
    (sftp_server.root / "big.bin").write_bytes(os.urandom(16 * 1024 * 1024))
    endpoint = open_endpoint(sftp_server.url(), key_login, settings)
    with pytest.raises(TransientError) as e, endpoint.open_read("big.bin") as f:
        f.read(1)
        endpoint.fs.client.get_transport().close()  # type: ignore[attr-defined]  # the line goes down
        f.read()
    assert e.value.code == "E615"
    endpoint.close()
    for thread in threading.enumerate():  # let the read-ahead threads end inside this test
        if "prefetch" in thread.name:
            thread.join(timeout=10)
