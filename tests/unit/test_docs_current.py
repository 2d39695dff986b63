"""The generated parts of docs/ (settings table, command reference) match the code.

A setting or a command added without running `make docs` fails here, and so does a hand
edit between the markers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from pydantic import Field

from contactsync.cli import reference
from contactsync.cli.reference import SECTIONS, Section, generated_part, spliced
from contactsync.secrets import MASK
from contactsync.settings import Settings

ROOT = Path(__file__).parents[2]
STALE = "{path} is out of date: run `make docs` and commit the result"


def _section(path: str) -> Section:
    return next(s for s in SECTIONS if s.path == path)


def _run(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTSYNC_")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("path", [s.path for s in SECTIONS])
def test_generated_docs_are_what_make_docs_writes(path: str) -> None:
    text = (ROOT / path).read_text()
    assert spliced(text, _section(path)) == text, STALE.format(path=path)


def test_configuration_md_documents_every_setting_with_its_env_var_and_default() -> None:
    table = generated_part((ROOT / "docs/configuration.md").read_text(), _section("docs/configuration.md"))
    for name, field in Settings.model_fields.items():
        row = next((line for line in table.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, STALE.format(path="docs/configuration.md") + f" ({name} is missing)"
        assert f"`CONTACTSYNC_{name.upper()}`" in row
        assert field.description, f"Settings.{name} needs a description: it is the documentation"
    smtp = table.split("### Email (SMTP)")[1].split("###")[0]
    assert "`CONTACTSYNC_SMTP_PORT` | `25` |" in smtp
    assert "| `worker_threads` | `CONTACTSYNC_WORKER_THREADS` | `2` |" in table
    assert "Must be at least 1." in table  # constraints of the field are part of its meaning


def test_cli_md_documents_every_command_option_and_argument() -> None:
    text = generated_part((ROOT / "docs/cli.md").read_text(), _section("docs/cli.md"))
    for heading in [
        "### contactsync exchange run",
        "### contactsync frontend list add",
        "### contactsync settings",
        "### contactsync webhooks token",
    ]:
        assert f"\n{heading}\n" in text, STALE.format(path="docs/cli.md")
    assert "contactsync frontend field [OPTIONS] CODE [PATH]" in text
    assert "| `-w, --workspace TEXT` | Workspace id (default: the first one). |" in text
    assert "| `--role admin\\|user\\|source` | admin, user or source. [required] |" in text
    assert "| `--background / --no-background` |" in text


def test_cli_md_overview_names_every_top_level_command() -> None:
    """The hand-written overview at the top of docs/cli.md is not generated: keep it complete."""
    page = (ROOT / "docs/cli.md").read_text()
    overview = page.split("```text\n", 1)[1].split("```", 1)[0]
    words = set(re.findall(r"[a-z]+", overview))
    root = typer.main.get_command(reference._registered_app())
    missing = [n for n, c in root.commands.items() if not c.hidden and n not in words]  # type: ignore[attr-defined]
    assert not missing, f"add {missing} to the command overview at the top of docs/cli.md"


def test_a_new_setting_or_command_makes_the_docs_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    class More(Settings):
        console_session_hours: float = Field(8.0, ge=1, description="Hours a console session lasts.")

    monkeypatch.setattr(reference, "Settings", More)
    page = (ROOT / "docs/configuration.md").read_text()
    fresh = spliced(page, _section("docs/configuration.md"))
    assert fresh != page
    assert (
        "| `console_session_hours` | `CONTACTSYNC_CONSOLE_SESSION_HOURS` | `8` | "
        "Hours a console session lasts. Must be at least 1. |"
    ) in fresh
    assert fresh.index("### Web console") > fresh.index("### Email (SMTP)")
    assert spliced(fresh, _section("docs/configuration.md")) == fresh  # generating twice changes nothing

    app = typer.Typer()
    group = typer.Typer(help="Things.")
    app.add_typer(group, name="thing")

    @group.command("make")
    def make(
        name: Annotated[str, typer.Argument(help="The thing's name.")],
        size: Annotated[int, typer.Option("--size", "-s", help="How big.")] = 3,
        tags: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeat).")] = None,
    ) -> None:
        """Make a thing.

        It is kept.
        """

    @app.command("hide", hidden=True)
    def hide() -> None:
        """Not documented."""

    text = reference.commands_markdown(app)
    assert "Commands: [`thing`](#contactsync-thing)." in text
    assert "### contactsync thing\n\nThings.\n\nCommands: [`make`](#contactsync-thing-make)." in text
    assert "### contactsync thing make\n\nMake a thing.\n\nIt is kept.\n" in text
    assert "```text\ncontactsync thing make [OPTIONS] NAME\n```" in text
    assert "| `NAME` | The thing's name. [required] |" in text
    assert "| `-s, --size INTEGER` | How big. [default: 3] |" in text
    assert "| `--tag TEXT` | A tag (repeat). |" in text
    assert "hide" not in text


def test_markers_must_be_present() -> None:
    with pytest.raises(ValueError, match="lacks the markers"):
        spliced("# Configuration\n\nno markers here\n", _section("docs/configuration.md"))


def test_settings_markdown_command_prints_the_table_of_configuration_md() -> None:
    done = _run("-m", "contactsync", "settings", "--markdown", CONTACTSYNC_SMTP_PORT="587")
    assert done.returncode == 0, done.stderr
    page = (ROOT / "docs/configuration.md").read_text()
    assert done.stdout.strip() == generated_part(page, _section("docs/configuration.md")).strip()
    assert "`CONTACTSYNC_SMTP_PORT` | `25` |" in done.stdout  # defaults, not this machine's values


def test_settings_command_shows_values_in_effect_with_secrets_masked(tmp_path: Path) -> None:
    done = _run(
        "-m",
        "contactsync",
        "settings",
        "--json",
        cwd=tmp_path,  # no .env there
        CONTACTSYNC_SMTP_PASSWORD="hunter2-secret",
        CONTACTSYNC_SECRET_KEYS="key-one,key-two",
        CONTACTSYNC_DATABASE_URL="postgresql://sync:db-pass-123@db.internal:5432/hub",
        CONTACTSYNC_SMTP_PORT="587",
    )
    assert done.returncode == 0, done.stderr
    values = {r["name"]: r for r in json.loads(done.stdout)}
    assert values.keys() == Settings.model_fields.keys()
    assert values["smtp_port"] == {"name": "smtp_port", "env": "CONTACTSYNC_SMTP_PORT", "value": "587"}
    assert values["smtp_password"]["value"] == MASK
    assert values["secret_keys"]["value"] == MASK
    assert values["database_url"]["value"] == "postgresql://sync:***@db.internal:5432/hub"
    assert values["public_url"]["value"] == ""
    for secret in ("hunter2-secret", "key-one", "db-pass-123"):
        assert secret not in done.stdout


def test_gen_docs_script_check_passes_on_current_docs() -> None:
    done = _run("scripts/gen_docs.py", "--check")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
