"""Persistence adapters implementing the domain's TodoRepository."""
