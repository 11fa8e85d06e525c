"""The checks a message received on port 25 goes through at the end of DATA, in order.

Each step is an async function of the message (and the verdict of the steps before it,
whose results a later step may use: a spam filter reads the authentication results) that
returns its own Verdict. Steps never block the event loop: DNS is asynchronous, database
work goes through dbpool.run. A step that cannot decide for a passing reason returns a
tempfail or says so in its results; an exception in a step is a bug, and the SMTP
session answers it with a temporary failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from django.conf import settings

from mailcore.inbound.authentication import authenticate
from mailcore.inbound.spam import check_spam
from mailcore.inbound.verdict import ACCEPT, Incoming, Verdict

__all__ = ["Incoming", "Step", "judge", "steps"]


Step = Callable[[Incoming, Verdict], Awaitable[Verdict]]


async def judge(incoming: Incoming, steps: Sequence[Step]) -> Verdict:
    """Run the steps in order and return the sum of their verdicts.

    A refusal ends the run: the later steps would only spend time on a message that is
    not taken.
    """
    verdict = ACCEPT
    for step in steps:
        verdict = verdict.then(await step(incoming, verdict))
        if verdict.refused:
            break
    return verdict


def steps() -> list[Step]:
    """Return the steps every message received on port 25 goes through, in order."""
    found: list[Step] = []
    if settings.INBOUND_AUTH:
        found.append(authenticate)
    if settings.RSPAMD_URL:
        found.append(check_spam)  # after authentication: it reads the results
    return found
