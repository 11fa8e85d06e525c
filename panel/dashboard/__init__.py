"""The operator's dashboard: totals, traffic charts, the queue, storage and customers' limits."""
