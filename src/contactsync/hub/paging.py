"""Page limits shared by every paged list (customers, events)."""

from __future__ import annotations

from contactsync.errors import FieldProblem, invalid


def check_page(page: int, size: int, max_size: int) -> None:
    """Refuse a page outside the limits rather than cap it.

    A silently capped page looks like a short last page, so a client would stop reading early.
    """
    problems = []
    if page < 0:
        problems.append(FieldProblem("page", "page must be 0 or more"))
    if not 1 <= size <= max_size:
        problems.append(
            FieldProblem(
                "size",
                f"size must be 1..{max_size} (the max_page_size setting); read more pages instead",
            )
        )
    if problems:
        raise invalid(problems)
