"""`Repository.put_once`: a create that botocore may retry after a lost answer (see test_aws_faults)."""

from __future__ import annotations

import pytest

from chatbot.config import get_settings
from chatbot.dal.audit import AuditRepository
from chatbot.errors import Conflict


def test_a_retried_create_that_already_landed_is_a_success(aws_env):
    repo = AuditRepository(get_settings().audit_table)
    item = {"pk": "AUDIT#2026-12-05", "sk": "x#1", "action": "create_agent", "score": 0.5}
    assert repo.put_once(item) == item
    assert repo.put_once(dict(item)) == item  # the retry meets our own item
    assert repo.get("AUDIT#2026-12-05", "x#1", consistent=True) == item


def test_another_item_under_the_same_key_is_a_conflict_and_is_kept(aws_env):
    repo = AuditRepository(get_settings().audit_table)
    repo.put_once({"pk": "AUDIT#2026-12-05", "sk": "x#2", "action": "create_agent"})
    with pytest.raises(Conflict):
        repo.put_once({"pk": "AUDIT#2026-12-05", "sk": "x#2", "action": "delete_agent"})
    assert repo.get("AUDIT#2026-12-05", "x#2", consistent=True)["action"] == "create_agent"
