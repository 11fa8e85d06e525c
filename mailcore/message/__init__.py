"""What a message is: MIME structure, header and address parsing, ENVELOPE, search keys.

The message model, used by the store, the protocol servers and webmail alike. It imports
no other part of mailcore: protocols render it (IMAP in mailcore.imap.bodystructure),
the store keeps what it computes.
"""
