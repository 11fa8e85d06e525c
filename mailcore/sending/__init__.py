"""Sending: the one way mail leaves for a principal, whoever asks.

The submission listener, webmail compose, the vacation reply and the panel's own mail all
come through here: sender rules (senders), the hourly limit, added fields and DKIM, local
delivery at once and the outbound queue for the rest (outgoing). The queue's delivery
attempts to remote servers are the layer beside this one (mailcore.queue).
"""
