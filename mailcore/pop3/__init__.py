"""The POP3 server (RFC 1939, 2449, 2595, 5034): downloading a mailbox's INBOX."""
