"""The mail system: directory, store, queue, their services, tasks and protocol servers."""
