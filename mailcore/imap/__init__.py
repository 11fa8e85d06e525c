"""The IMAP server (RFC 3501, RFC 9051) over the message store."""
