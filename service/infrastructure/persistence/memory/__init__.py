"""The embedded in-memory store: the default for `make run` and fast tests."""
