"""`make bench` (`python -m benchmarks`): the performance comparisons of the todo service.

Benchmark-only code, never imported by `service/` and never shipped. This file
imports nothing on purpose: the servers in `benchmarks/servers/` run as
`python -m benchmarks.servers.NAME` from other virtualenvs (B0 on another
grpcio, the seed app on the FastAPI stack) where neither the service nor its
dependencies are installed.
"""
