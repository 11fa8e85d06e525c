"""The outbound queue: routing to the next hop, delivery attempts, retries and bounces."""
