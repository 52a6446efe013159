"""Audit entries (AUDIT_TABLE): pk `AUDIT#<yyyy-mm-dd>`, sk `<iso timestamp>#<uuid>`; gsi1 `ACTOR#<actor>`
with the same sort key. Append-only: there is no update or delete here."""

from __future__ import annotations

from boto3.dynamodb.conditions import ConditionBase, Key

from chatbot.dal.base import Item, Page, Repository, encode_cursor


def day_pk(day: str) -> str:
    return f"AUDIT#{day}"


def actor_pk(actor: str) -> str:
    return f"ACTOR#{actor}"


class AuditRepository(Repository):
    entity = "audit_entry"

    def append(self, item: Item) -> Item:
        return self.put_once(item)

    def page(
        self,
        *,
        day: str | None = None,
        actor: str | None = None,
        lower: str,
        upper: str,
        limit: int,
        after_sk: str | None = None,
        filter_expression: ConditionBase | None = None,
    ) -> Page:
        """Entries of one `day` partition, or of one `actor` (gsi1), with `lower <= sk <= upper`, newest
        first, after `after_sk` if given."""
        if actor is not None:
            index: str | None = "gsi1"
            key = Key("gsi1pk").eq(actor_pk(actor)) & Key("gsi1sk").between(lower, upper)
        elif day is not None:
            index, key = None, Key("pk").eq(day_pk(day)) & Key("sk").between(lower, upper)
        else:
            raise ValueError("a day or an actor is required")
        start = None
        if after_sk:
            # The sort key names its item: the day partition is its date, the index keys are the same.
            start = {"pk": day_pk(after_sk[:10]), "sk": after_sk}
            if index:
                start |= {"gsi1pk": actor_pk(actor or ""), "gsi1sk": after_sk}
        return self.query_page(
            key,
            index=index,
            limit=limit,
            cursor=encode_cursor(start),
            newest_first=True,
            filter_expression=filter_expression,
        )
