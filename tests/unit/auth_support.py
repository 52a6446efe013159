"""Fixtures of the auth/admin tests, on top of the shared `aws_env` (tests/conftest.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import boto3
import pytest


@dataclass(frozen=True)
class AdminEnv:
    admin_token: str  # the admin token secret's AWSCURRENT value
    secret_id: str


def current_admin_token() -> str:
    secret_id = os.environ["ADMIN_TOKEN_SECRET_ID"]
    sm = boto3.client("secretsmanager", region_name=os.environ.get("AWS_REGION", "us-east-1"))
    return str(sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"])


@pytest.fixture
def admin_env(aws_env) -> AdminEnv:
    """The template's stack in moto, and its admin token."""
    return AdminEnv(admin_token=current_admin_token(), secret_id=os.environ["ADMIN_TOKEN_SECRET_ID"])
