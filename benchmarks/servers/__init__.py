"""The benchmark servers, each run as `python -m benchmarks.servers.NAME` (see benchmarks/README.md).

Imports nothing: b0 and seed_app run in virtualenvs without the service's dependencies.
"""
