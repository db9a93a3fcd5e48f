"""Counted nouns in the sentences we print and log: ``1 member``, ``2 members``.

Used by the CLI's rendering and by the daemons' log lines and status texts.
"""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``1 member``, ``2 members``, ``0 groups``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
