"""aiosmtpd's private hooks: only mailcore.smtp.adapter uses them, and each one is pinned."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import aiosmtpd.smtp
import pytest
from aiosmtpd.smtp import SMTP

import mailcore.smtp

SMTP_PACKAGE = Path(mailcore.smtp.__file__).parent


def _private_names_of_smtp() -> set[str]:
    """Return the underscore names of aiosmtpd's SMTP: its methods and attributes, and those
    of asyncio's StreamReaderProtocol below it, including the ones set only once connected."""
    protocol = SMTP(object(), hostname="mx.test", loop=None)
    tree = ast.parse(inspect.getsource(aiosmtpd.smtp))
    set_later = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                 and isinstance(node.value, ast.Name) and node.value.id == "self"}
    names = set(dir(SMTP)) | set(vars(protocol)) | set_later
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


@pytest.mark.parametrize("module", ["server.py", "submission.py"])
def test_the_smtp_sessions_use_no_private_name_of_aiosmtpd(module):
    tree = ast.parse((SMTP_PACKAGE / module).read_text())
    private = _private_names_of_smtp()
    used = sorted({node.attr for node in ast.walk(tree)
                   if isinstance(node, ast.Attribute) and node.attr in private})
    assert used == [], f"{module} reaches into aiosmtpd: move it to mailcore/smtp/adapter.py"
