"""Sender authentication at the end of DATA: SPF, DKIM, ARC and DMARC, and what follows.

The step runs the checks concurrently (SPF for MAIL FROM and HELO, every DKIM signature,
the ARC chain), then DMARC on their results, and returns a Verdict: one
Authentication-Results field (RFC 8601) to put on top, and the DMARC policy applied:
p=reject refused with 550 5.7.1 (or filed to Junk where the recipient domain asks for
that instead), p=quarantine filed to Junk. A DNS failure leaves "temperror" in the field;
when it hides which DMARC policy applies, the message is deferred with 451 4.4.3 (RFC 7489
section 6.6.3, RFC 7208 section 8.6) unless INBOUND_DNS_FAILURE is "accept".
"""

from __future__ import annotations

import asyncio

from django.conf import settings

from mailcore import dbpool, directory
from mailcore.inbound import authresults, dmarc, lookups, signatures, spf
from mailcore.inbound.verdict import ACCEPT, Incoming, Verdict, junk, reject, tempfail


async def authenticate(incoming: Incoming, so_far: Verdict = ACCEPT) -> Verdict:
    """The pipeline step: check the sender's authentication and apply DMARC."""
    resolver = lookups.resolver()
    ip, helo = incoming.client_ip, incoming.helo
    mail_from, helo_result, dkim_results, chain = await asyncio.gather(
        spf.check(ip, incoming.mail_from, helo, resolver),
        spf.check_helo(ip, helo, resolver),
        signatures.verify_dkim(incoming.content, resolver),
        signatures.verify_arc(incoming.content, resolver),
    )
    outcome = await dmarc.evaluate(incoming.content, mail_from, dkim_results, resolver)
    trusted_chain = (chain.result == "pass"
                     and chain.sealer in settings.ARC_TRUSTED_SEALERS)
    header = authresults.header(settings.MAIL_HOSTNAME, _resinfo(
        incoming, mail_from, helo_result, dkim_results, outcome, chain, trusted_chain))
    found = Verdict(headers=(header,), results=(
        ("spf", mail_from.result), ("spf.helo", helo_result.result),
        ("dkim", _best(dkim_results)), ("dmarc", outcome.result), ("arc", chain.result),
        ("dmarc.policy", outcome.enforce), ("from.domain", outcome.from_domain)))
    return found.then(await _policy(incoming, outcome, trusted_chain))


async def _policy(incoming: Incoming, outcome: dmarc.DMARCResult, trusted_chain: bool
                  ) -> Verdict:
    """Return what the From domain's DMARC policy (and our settings) make of the message."""
    domain = outcome.from_domain
    if outcome.result == "temperror" and settings.INBOUND_DNS_FAILURE == "defer" and (
            outcome.published in ("", "quarantine", "reject")):
        return tempfail(f"Could not check the DMARC policy of {domain} (DNS failed); "
                        "try again later", "4.4.3")
    if outcome.enforce == "none":
        return ACCEPT
    if trusted_chain:
        # RFC 7489 section 7.2.1 (local_policy): a forwarder we trust vouches, by its ARC
        # seal, that the message passed when it reached it.
        return ACCEPT
    if outcome.enforce == "reject":
        recipient_domains = {r.rpartition("@")[2].lower() for r in incoming.recipients}
        if not await dbpool.run(directory.quarantines_dmarc_rejects, recipient_domains):
            return reject(f"Message refused by the DMARC policy of {domain} (p=reject): "
                          f"it is not authenticated as coming from {domain}")
    return junk(f"DMARC policy of {domain} ({outcome.published}): not authenticated "
                f"as coming from {domain}")


def _best(results: list[signatures.Signature]) -> str:
    """Return the message's DKIM result in one word: the best of its signatures'."""
    order = ("pass", "temperror", "fail", "permerror", "neutral")
    found = {r.result for r in results}
    return next((r for r in order if r in found), "none")


def _resinfo(incoming: Incoming, mail_from: spf.SPFResult, helo: spf.SPFResult,
             dkim_results: list[signatures.Signature], outcome: dmarc.DMARCResult,
             chain: signatures.ChainResult, trusted_chain: bool) -> list[str]:
    """Return the resinfo entries of our Authentication-Results field (RFC 8601 section 2.2)."""
    v, c = authresults.value, authresults.comment
    sender_domain = incoming.mail_from.rpartition("@")[2] if incoming.mail_from else ""
    entries = []
    if sender_domain:  # RFC 7001/8601 section 2.7.2: smtp.mailfrom
        entries.append(f"spf={mail_from.result} smtp.mailfrom={v(sender_domain)}")
    if incoming.helo:
        entries.append(f"spf={helo.result} smtp.helo={v(incoming.helo)}")
    for s in dkim_results:
        reason = f" ({c(s.reason)})" if s.reason else ""
        entries.append(f"dkim={s.result}{reason} header.d={v(s.domain or 'unknown')}"
                       f" header.s={v(s.selector or 'unknown')}"
                       + (f" header.b={v(s.b)}" if s.b else ""))
    if not dkim_results:
        entries.append("dkim=none")
    policy = f" (p={outcome.published})" if outcome.published else ""
    if trusted_chain and outcome.result == "fail":
        policy += f" (policy overridden: ARC sealed by {c(chain.sealer)})"
    entries.append(f"dmarc={outcome.result}{policy}"
                   + (f" header.from={v(outcome.from_domain)}" if outcome.from_domain else ""))
    sealer = f" (sealed by {c(chain.sealer)})" if chain.sealer else ""
    entries.append(f"arc={chain.result}{sealer}")
    return entries
