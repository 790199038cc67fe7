"""Inbound gRPC adapter: servicer, message mapping, error mapping, server factory."""
