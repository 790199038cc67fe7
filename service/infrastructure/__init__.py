"""Infrastructure layer: adapters to the outside world.

Inbound: the gRPC transport (`grpc/`). Outbound: persistence (`persistence/`).
Also the typed settings read from the environment (the `config` package).
"""
