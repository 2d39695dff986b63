from __future__ import annotations

from contactsync.cli import main

main()
