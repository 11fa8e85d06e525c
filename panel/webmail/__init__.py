"""Webmail: read and send a mailbox's mail in the browser, signed in with the mailbox's password."""
