"""Tooling that is not deployed: the local stack."""
