"""Application layer: the use cases, orchestrating the domain and the repository."""
