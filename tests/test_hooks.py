"""The hooks the lower layers call are answered by the Celery tasks, installed at start-up."""

from __future__ import annotations

import pytest

from mailcore import hooks, tasks


def test_the_app_installs_the_celery_tasks_behind_the_hooks() -> None:
    # outbound_due is replaced in every test by the kicked fixture (tests/conftest.py).
    assert hooks.installed.arrived is tasks.HOOKS.arrived
    assert hooks.installed.domain_deactivated is tasks.HOOKS.domain_deactivated


def test_the_installed_hooks_publish_the_tasks(monkeypatch, db) -> None:
    published: list[tuple[str, object]] = []
    monkeypatch.setattr("mailcore.tasks.drain_outbound.delay",
                        lambda: published.append(("drain", None)))
    monkeypatch.setattr("mailcore.tasks.remove_domain_data.delay",
                        lambda domain_id: published.append(("remove", domain_id)))
    tasks.HOOKS.outbound_due([7, 8])
    hooks.domain_deactivated(3)
    assert published == [("drain", None), ("remove", 3)]


def test_a_hook_nobody_installed_says_so() -> None:
    with pytest.raises(RuntimeError, match="not installed"):
        hooks.Hooks().arrived(hooks.Arrival([1], "key", "a@b.test", "INBOX"))
