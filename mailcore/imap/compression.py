"""The COMPRESS command (RFC 4978): raw DEFLATE on the rest of the connection.

The streams are swapped in mailcore.sessions (mailcore.deflate does the compressing);
this module reads the command and answers it: the tagged OK is the last uncompressed
line, the first thing after it is compressed (RFC 4978 section 3).
"""

from __future__ import annotations

from mailcore.imap import encode, replies
from mailcore.imap.context import Session
from mailcore.imap.parser import Command
from mailcore.sessions import BadSyntax, Refused

CAPABILITY = "COMPRESS=DEFLATE"


async def do_compress(session: Session, command: Command) -> None:
    # RFC 4978 section 3: one algorithm, DEFLATE; a second COMPRESS is refused.
    if command.args != "DEFLATE":
        raise BadSyntax(replies.UNKNOWN_COMPRESSION)
    if session.compressed:
        raise Refused(replies.COMPRESSION_ACTIVE)
    await session.send(encode.tagged(command.tag, "OK", replies.COMPRESSING))
    session.start_compression()
