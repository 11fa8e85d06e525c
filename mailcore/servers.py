"""The table of mail servers mailcore runs: each listener's name, port and protocol server.

It sits above the protocol servers and mailcore.listeners: the servers use the listeners'
helpers, and the listeners start whatever this table gives them, importing no server.
"""

from __future__ import annotations

import functools
import ssl

from django.conf import settings

from mailcore.imap.server import start_imap
from mailcore.listeners import ListenerSpec
from mailcore.pop3.server import start_pop3
from mailcore.proxy import TrustedProxies
from mailcore.smtp.server import start_smtp
from mailcore.smtp.submission import start_submission


def configured_specs(tls: ssl.SSLContext) -> list[ListenerSpec]:
    """Return the listeners the settings ask for (0 disables one, a negative port is "auto").

    TRUSTED_PROXIES is read here, once: a bad entry stops mailcore before it listens.
    """
    trusted = TrustedProxies.from_settings()
    table = [  # name, port, server, and for the TLS-capable ones: implicit TLS or STARTTLS
        ("smtp", settings.SMTP_PORT, start_smtp, None),
        ("submission", settings.SUBMISSION_PORT, start_submission, False),
        ("submissions", settings.SUBMISSIONS_PORT, start_submission, True),
        ("pop3", settings.POP3_PORT, start_pop3, False),
        ("pop3s", settings.POP3S_PORT, start_pop3, True),
        ("imap", settings.IMAP_PORT, start_imap, False),
        ("imaps", settings.IMAPS_PORT, start_imap, True),
    ]
    specs = []
    for name, port, start, implicit_tls in table:
        options = {"tls": tls, "trusted": trusted}
        if implicit_tls is not None:
            options["implicit_tls"] = implicit_tls
        specs.append(ListenerSpec(name, port, functools.partial(start, **options)))
    return specs
