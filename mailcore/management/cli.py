"""Terminal helpers shared by the directory commands: prompts, passwords, sizes and tables."""

from __future__ import annotations

import getpass
import re
from collections.abc import Iterable, Sequence
from typing import TextIO

from django.core.management import CommandError
from django.core.management.base import OutputWrapper

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

PASSWORD_ON_COMMAND_LINE = (
    "passwords are not accepted on the command line (they would show in the shell "
    "history and the process list); use --password-stdin or the interactive prompt"
)


def parse_size(text: str) -> int:
    """Return the bytes in a size such as 500M, 2G, 1.5GiB or 0 (binary units)."""
    text = text.strip()
    if text.lower() == "unlimited":
        return 0
    match = _SIZE.match(text)
    if match is None:
        raise CommandError(f"invalid size {text!r} (use e.g. 500M, 2G, or 0 for unlimited)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.upper()])


def format_size(size: int, zero: str = "0") -> str:
    """Return a size as the shortest exact-enough figure: 512, 500M, 1.5G."""
    if not size:
        return zero
    for unit in ("T", "G", "M", "K"):
        scale = _UNITS[unit]
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + unit
    return str(size)


def is_interactive(stdin: TextIO) -> bool:
    isatty = getattr(stdin, "isatty", None)
    return bool(isatty and isatty())


def confirm(question: str, stdin: TextIO, stdout: OutputWrapper, assume_yes: bool) -> None:
    """Ask a yes/no question; raise CommandError unless the answer is yes."""
    if assume_yes:
        return
    if not is_interactive(stdin):
        raise CommandError("refusing to proceed without confirmation: pass --yes")
    stdout.write(f"{question} [y/N] ", ending="")
    stdout.flush()
    if stdin.readline().strip().lower() not in {"y", "yes"}:
        raise CommandError("aborted")


def read_password(stdin: TextIO, from_stdin: bool) -> str:
    """Return a new password read as one line from stdin, or typed twice at the prompt."""
    if from_stdin:
        password = stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on stdin")
        return password
    if not is_interactive(stdin):
        raise CommandError("stdin is not a terminal: use --password-stdin to pipe a password")
    password = getpass.getpass("Password: ")
    if not password:
        raise CommandError("a password is required")
    if getpass.getpass("Password (again): ") != password:
        raise CommandError("the passwords do not match")
    return password


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def write_table(stdout: OutputWrapper, header: Sequence[str], rows: Iterable[Sequence[object]],
                empty: str) -> None:
    """Write rows as left-aligned columns under a header, or the empty message."""
    cells = [[str(cell) for cell in row] for row in rows]
    if not cells:
        stdout.write(empty)
        return
    widths = [max(len(row[i]) for row in [list(header), *cells]) for i in range(len(header))]
    for row in [list(header), *cells]:
        stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     .rstrip())
