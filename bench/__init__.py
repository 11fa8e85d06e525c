"""Benchmark harness: reference servers and generic SMTP/POP3 load generators."""
