"""The table of mail servers mailcore runs: each listener's name, port and protocol server.

It sits above the protocol servers and mailcore.listeners: the servers use the listeners'
helpers, and the listeners start whatever this table gives them, importing no server.
"""

from __future__ import annotations

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
    return [
        ListenerSpec("smtp", settings.SMTP_PORT,
                     lambda h, p, c: start_smtp(h, p, c, tls=tls, trusted=trusted)),
        ListenerSpec("submission", settings.SUBMISSION_PORT,
                     lambda h, p, c: start_submission(h, p, c, tls=tls, implicit_tls=False,
                                                      trusted=trusted)),
        ListenerSpec("submissions", settings.SUBMISSIONS_PORT,
                     lambda h, p, c: start_submission(h, p, c, tls=tls, implicit_tls=True,
                                                      trusted=trusted)),
        ListenerSpec("pop3", settings.POP3_PORT,
                     lambda h, p, c: start_pop3(h, p, c, tls=tls, implicit_tls=False,
                                                trusted=trusted)),
        ListenerSpec("pop3s", settings.POP3S_PORT,
                     lambda h, p, c: start_pop3(h, p, c, tls=tls, implicit_tls=True,
                                                trusted=trusted)),
        ListenerSpec("imap", settings.IMAP_PORT,
                     lambda h, p, c: start_imap(h, p, c, tls=tls, implicit_tls=False,
                                                trusted=trusted)),
        ListenerSpec("imaps", settings.IMAPS_PORT,
                     lambda h, p, c: start_imap(h, p, c, tls=tls, implicit_tls=True,
                                                trusted=trusted)),
    ]
