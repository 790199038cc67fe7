"""Domain layer: business objects, rules and the repository interface.

Plain Python only: nothing here imports the wire contract, gRPC, a database
driver or the container.
"""
