"""The message model sits low: it imports nothing above it, and nothing below imports IMAP."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Packages that must reach the message model without going through the IMAP server
# (webmail/__init__.py promises webmail never imports it).
NOT_IMAP_CLIENTS = ("mailcore/store", "mailcore/webmail", "mailcore/queue", "mailcore/smtp",
                    "mailcore/pop3", "panel")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line, module) for every import in a file, those inside functions included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.level:
                continue  # the project uses absolute imports only; ruff keeps it so
            yield node.lineno, node.module
            for alias in node.names:  # "from mailcore import imap" names a package
                yield node.lineno, f"{node.module}.{alias.name}"


def python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_the_message_model_imports_no_other_part_of_mailcore() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in python_files("mailcore/message")
             for line, module in imports(path)
             if module.split(".")[0] in ("mailcore", "panel")
             and not module.startswith("mailcore.message")]
    assert wrong == []


def test_store_webmail_and_the_other_servers_never_import_imap() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in python_files(*NOT_IMAP_CLIENTS)
             for line, module in imports(path)
             if module == "mailcore.imap" or module.startswith("mailcore.imap.")]
    assert wrong == []
