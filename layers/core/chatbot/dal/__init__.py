"""Repositories: one per DynamoDB table, storage only (no business rules)."""
