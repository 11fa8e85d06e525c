"""Webmail services (the web client's side in mailcore): list, read, act on and send mail.

The views in panel/webmail stay thin; every rule lives here, on top of the store,
directory and sending services (never the IMAP server, never the ORM from a view).
Every function takes the mailbox whose session asks, and refuses another's folders.
"""
