"""Inbound trust: what the end of DATA on port 25 decides about a message, and why."""
