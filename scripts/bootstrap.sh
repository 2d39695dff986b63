#!/usr/bin/env bash
# Creates .venv and installs contactsync with its development tools.
# Re-runs the install only when pyproject.toml changed since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "bootstrap: installing contactsync and its dev tools into .venv" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip 2>/dev/null || true
    .venv/bin/python -m pip install --quiet -e '.[dev]' 2> >(grep -v "is ignored: it is neither" >&2)
    rm -f .venv/.installed-*
    touch "$stamp"
fi
