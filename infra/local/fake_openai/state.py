"""Everything the fake remembers: recorded requests, queued faults and replies, files, vector stores.

Handlers run on the server's event loop while tests read and steer from their own thread, so every access
goes through one lock; no critical section awaits anything.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from .faults import Fault
from .generation import new_id
from .settings import FakeOpenAISettings

MAX_STORED_RESPONSES = 1000
VECTOR_STORE_FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")


class FakeState:
    def __init__(self, settings: FakeOpenAISettings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        # Set (on the server loop) when the server stops: every sleep in a handler ends with it.
        self.stopping = asyncio.Event()
        self._requests: deque[dict[str, Any]] = deque(maxlen=settings.max_recorded_requests)
        self._faults: list[tuple[Fault, str | None]] = []
        self._replies: list[str] = []
        self._sticky_reply: str | None = None
        self.files: dict[str, dict[str, Any]] = {}
        self.file_contents: dict[str, bytes] = {}
        self.vector_stores: dict[str, dict[str, Any]] = {}
        self.vector_store_files: dict[str, dict[str, dict[str, Any]]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.responses: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._deliveries: deque[dict[str, Any]] = deque(maxlen=1000)

    # --- recording -----------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self._requests.append(entry)

    def recorded(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self._requests if path is None or r["path"] == path]

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    # --- steering ------------------------------------------------------------------------

    def queue_faults(self, faults: list[str], path: str | None = None) -> list[Fault]:
        parsed = [Fault.parse(f) for f in faults]
        with self.lock:
            self._faults.extend((fault, path) for fault in parsed)
        return parsed

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for index, (fault, scope) in enumerate(self._faults):
                if scope is None or path == scope or path.startswith(scope.rstrip("/") + "/"):
                    del self._faults[index]
                    return fault
        return None

    def pending_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"fault": str(fault), "path": scope} for fault, scope in self._faults]

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def set_reply(self, text: str | None) -> None:
        with self.lock:
            self._sticky_reply = text

    def queue_replies(self, texts: list[str]) -> None:
        with self.lock:
            self._replies.extend(texts)

    def take_reply(self) -> str | None:
        with self.lock:
            return self._replies.pop(0) if self._replies else self._sticky_reply

    def clear_replies(self) -> None:
        with self.lock:
            self._replies.clear()
            self._sticky_reply = None

    def record_delivery(self, url: str, event: dict[str, Any], status: int | None) -> None:
        """A webhook the fake sent; `status` None when the target was unreachable."""
        with self.lock:
            self._deliveries.append({"time": time.time(), "url": url, "event": event, "status": status})

    def deliveries(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._deliveries)

    def reset(self) -> None:
        """Forget everything except the settings."""
        with self.lock:
            self._requests.clear()
            self._faults.clear()
            self.clear_replies()
            for store in (self.files, self.file_contents, self.vector_stores, self.vector_store_files):
                store.clear()
            self.batches.clear()
            self.responses.clear()
            self._deliveries.clear()

    # --- files ---------------------------------------------------------------------------

    def add_file(self, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        file = {
            "id": new_id("file-", 12),
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        with self.lock:
            self.files[file["id"]] = file
            self.file_contents[file["id"]] = content
        return dict(file)

    # --- vector stores -------------------------------------------------------------------

    def vector_store_view(self, vs_id: str) -> dict[str, Any] | None:
        with self.lock:
            store = self.vector_stores.get(vs_id)
            if store is None:
                return None
            files = list(self.vector_store_files.get(vs_id, {}).values())
        counts = _file_counts(files)
        return {
            **store,
            "file_counts": counts,
            "status": "in_progress" if counts["in_progress"] else "completed",
            "usage_bytes": sum(f["usage_bytes"] for f in files if f["status"] == "completed"),
        }

    def attach_file(self, vs_id: str, file_id: str, attributes: Any, chunking: Any) -> dict[str, Any]:
        entry = {
            "id": file_id,
            "object": "vector_store.file",
            "created_at": int(time.time()),
            "usage_bytes": 0,
            "vector_store_id": vs_id,
            "status": "in_progress",
            "last_error": None,
            "attributes": attributes if isinstance(attributes, dict) else {},
            "chunking_strategy": _chunking(chunking),
        }
        with self.lock:
            self.vector_store_files.setdefault(vs_id, {})[file_id] = entry
            self.vector_stores[vs_id]["last_active_at"] = entry["created_at"]
        return dict(entry)

    def finish_ingestion(self, vs_id: str, file_id: str) -> dict[str, Any] | None:
        """Move an in-progress file to its final status; None when it was removed or cancelled meanwhile."""
        with self.lock:
            entry = self.vector_store_files.get(vs_id, {}).get(file_id)
            if entry is None or entry["status"] != "in_progress":
                return None
            file = self.files.get(file_id, {})
            if "fail" in str(file.get("filename", "")).lower():
                entry["status"] = "failed"
                entry["last_error"] = {"code": "invalid_file", "message": "The file could not be parsed."}
            else:
                entry["status"] = "completed"
                entry["usage_bytes"] = int(file.get("bytes", 0))
            return dict(entry)

    def batch_view(self, batch_id: str) -> dict[str, Any] | None:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            store_files = self.vector_store_files.get(batch["vector_store_id"], {})
            files = [store_files[f] for f in batch["file_ids"] if f in store_files]
        counts = _file_counts(files)
        if batch["cancelled"]:
            status = "cancelled"
        elif counts["in_progress"]:
            status = "in_progress"
        else:
            status = "failed" if counts["failed"] and not counts["completed"] else "completed"
        view = {k: v for k, v in batch.items() if k not in ("file_ids", "cancelled")}
        return {**view, "status": status, "file_counts": counts}

    # --- responses -----------------------------------------------------------------------

    def store_response(self, response: dict[str, Any]) -> None:
        with self.lock:
            self.responses[response["id"]] = response
            while len(self.responses) > MAX_STORED_RESPONSES:
                self.responses.popitem(last=False)


def _file_counts(files: list[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(VECTOR_STORE_FILE_STATUSES, 0)
    for file in files:
        counts[file["status"]] += 1
    return {**counts, "total": len(files)}


def _chunking(strategy: Any) -> dict[str, Any]:
    if isinstance(strategy, dict) and strategy.get("type") == "static":
        return strategy
    return {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


def paginate(items: list[dict[str, Any]], query: Any, default_limit: int = 20) -> dict[str, Any]:
    """OpenAI's cursor list: `limit`, `order` (desc by default), `after`/`before` as item ids."""
    try:
        limit = max(1, min(int(query.get("limit") or default_limit), 10_000))
    except ValueError:
        limit = default_limit
    ordered = list(items) if query.get("order") == "asc" else list(reversed(items))
    ids = [item["id"] for item in ordered]
    if (after := query.get("after")) in ids:
        ordered = ordered[ids.index(after) + 1 :]
    elif (before := query.get("before")) in ids:
        ordered = ordered[: ids.index(before)][-limit:]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }
