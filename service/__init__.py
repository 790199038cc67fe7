"""The todo service: a gRPC microservice for todo entries (contract: todo.v1).

Layers (enforced by import-linter, see pyproject.toml):
    infrastructure -> application -> domain
The composition root (`service.bootstrap`) wires them together at runtime.
"""
