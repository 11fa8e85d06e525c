"""The embedded broker: kombu's filesystem transport, publishing each message atomically,
and quiet about having no host.

kombu's own transport creates the message file and then writes it; a worker polling the
folder can take the file in between, read nothing, and stop with a decoding error. Here
a message is written under a temporary name the worker ignores, then renamed into place.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        temporary = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(temporary, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

    @property
    def default_connection_params(self) -> dict:
        # A folder has no host: without "localhost" here, kombu stops warning "No hostname
        # was supplied" at every start and for every task sent.
        return {"port": self.default_port}
