"""Mail is sent through mailcore.sending: webmail, the store and the panel never reach SMTP."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> dict[str, set[str]]:
    """Return each module of a package (a path under the root) with the modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        found[str(path.relative_to(ROOT))] = names
    return found


def _reaching(package: str, forbidden: str) -> list[str]:
    return [f"{module} imports {name}" for module, names in _imports(package).items()
            for name in sorted(names) if name == forbidden or name.startswith(forbidden + ".")]


@pytest.mark.parametrize("package", ["mailcore/webmail", "mailcore/sending", "mailcore/store",
                                     "panel"])
def test_it_sends_through_the_sending_service_never_the_smtp_package(package) -> None:
    assert _reaching(package, "mailcore.smtp") == []


def test_sending_never_imports_webmail_or_the_protocol_servers() -> None:
    for above in ("mailcore.webmail", "mailcore.imap", "mailcore.pop3", "mailcore.smtp",
                  "panel"):
        assert _reaching("mailcore/sending", above) == []

