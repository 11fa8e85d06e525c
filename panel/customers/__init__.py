"""The customer's self-service pages: domains, DNS, mailboxes, aliases, client setup."""
