"""The embedded broker: a message being published is never seen half written."""

from __future__ import annotations

import logging
import os

from kombu import Connection

from panel.broker import Channel


def test_a_message_appears_only_complete(tmp_path, monkeypatch):
    seen: list[list[str]] = []
    real_replace = os.replace

    def watching_replace(src, dst):
        # At the moment of the rename, the folder holds only the temporary file,
        # which the consumer's name filter ignores.
        seen.append(sorted(os.listdir(tmp_path)))
        return real_replace(src, dst)

    monkeypatch.setattr("panel.broker.os.replace", watching_replace)
    (tmp_path / "control").mkdir()
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path),
               "control_folder": str(tmp_path / "control")}
    with Connection("filesystem://", transport="panel.broker:Transport",
                    transport_options=options) as connection:
        queue = connection.SimpleQueue("tasks")
        queue.put({"hello": "world"})
        assert isinstance(queue.channel, Channel)
        assert [n for n in seen[0] if n.endswith(".msg")] == []
        assert [n for n in seen[0] if n.endswith(".tmp")] != []
        assert queue.get(timeout=2).payload == {"hello": "world"}
        queue.close()


def test_the_embedded_broker_does_not_warn_about_a_missing_hostname(tmp_path, caplog) -> None:
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path),
               "processed_folder": str(tmp_path)}
    with caplog.at_level(logging.WARNING, logger="kombu.connection"):
        with Connection("filesystem://", transport="panel.broker:Transport",
                        transport_options=options) as connection:
            connection.SimpleQueue("quiet").put({"n": 1})
            assert connection.as_uri()
    assert "No hostname was supplied" not in caplog.text
