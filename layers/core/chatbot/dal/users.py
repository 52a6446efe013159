"""Admin users (USERS_TABLE): `USER#<id>`/`USER`, plus one guard item `EMAIL#<email>`/`EMAIL` per user that
makes e-mail addresses unique (both written in one transaction)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.conditions import Attr

from chatbot.dal.base import Item, Page, Repository, to_dynamo
from chatbot.dal.transact import TransactionFailed, scan_page, transact
from chatbot.errors import Conflict

USER_SK = "USER"


def user_key(user_id: str) -> dict[str, str]:
    return {"pk": f"USER#{user_id}", "sk": USER_SK}


def email_key(email: str) -> dict[str, str]:
    return {"pk": f"EMAIL#{email}", "sk": "EMAIL"}


class UsersRepository(Repository):
    entity = "user"

    def create(self, user: Item) -> Item:
        """Store a new user and claim its e-mail address; a taken address is a 409 `duplicate_email`."""
        item = {**user, **user_key(user["id"]), "version": 1}
        guard = {**email_key(user["email"]), "user_id": user["id"], "version": 1}
        absent = "attribute_not_exists(pk)"
        try:
            transact(
                self,
                [
                    {"Put": {"Item": to_dynamo(item), "ConditionExpression": absent}},
                    {"Put": {"Item": guard, "ConditionExpression": absent}},
                ],
            )
        except TransactionFailed as failed:
            if failed.failed(1):
                raise Conflict("Email already exists", code="duplicate_email") from None
            raise Conflict("User changed concurrently", code="transaction_conflict") from None
        return item

    def find(self, user_id: str, *, consistent: bool = False) -> Item | None:
        return self.get(**user_key(user_id), consistent=consistent)

    def require_user(self, user_id: str, *, consistent: bool = False) -> Item:
        return self.require(**user_key(user_id), consistent=consistent)

    def find_by_email(self, email: str) -> Item | None:
        guard = self.get(**email_key(email), consistent=True)
        return self.find(guard["user_id"], consistent=True) if guard else None

    def list_page(self, *, limit: int, cursor: str | None) -> Page:
        # Admin users are few: a filtered scan is cheaper than maintaining an index for them.
        return scan_page(self, Attr("sk").eq(USER_SK), limit=limit, cursor=cursor)

    def change(
        self, user_id: str, changes: Mapping[str, Any], *, expected_version: int | None = None
    ) -> Item:
        return self.update(**user_key(user_id), changes=changes, expected_version=expected_version)
