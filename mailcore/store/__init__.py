"""The message store: blobs, folders, messages, delivery into mailboxes, and POP3 maildrops."""
