"""Vector stores, their files and the upstream's files, against moto (in-process) and the fake OpenAI.

Ingestion runs for real: `add_file` enqueues a `file_ingest` job through the jobs service, and the tests run
the worker Lambda on the queue's messages (tests/unit/_jobs_support.py) until the file's status is final.
"""

from __future__ import annotations

import base64
import time

import boto3
import pytest
from pydantic import ValidationError

from chatbot.config import get_settings
from chatbot.dal.vector_stores import VectorStoreRepository
from chatbot.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UpstreamError,
    ValidationFailed,
)
from chatbot.models.vector_stores import (
    OpenAIFileListQuery,
    OpenAIFileUpload,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreFileListQuery,
    VectorStoreListQuery,
    VectorStoreUpdate,
)
from chatbot.services.openai_files import OpenAIFileService
from chatbot.services.vector_stores import VectorStoreService
from chatbot.upstream.openai_client import reset_openai_client
from infra.local.fake_openai import FakeOpenAI
from tests.unit import _jobs_support as worker
from tests.unit.resources_env import mocked_tables, wipe_tables

TEXT = base64.b64encode(b"The answer is 42.\n").decode()


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(token_latency_ms=0, ingest_delay_s=0.05) as server:
        yield server


@pytest.fixture(scope="module")
def _env(fake):
    with mocked_tables(
        "VectorStoresTable",
        "JobsTable",
        OPENAI_BASE_URL=fake.api_base,
        OPENAI_API_KEY="sk-test",
        JOB_POLL_DELAY_SECONDS="0",
        UPSTREAM_MAX_RETRIES="0",
    ):
        yield


@pytest.fixture
def service(_env, fake):
    wipe_tables()
    _empty_queue(get_settings().jobs_queue_url)
    fake.reset()
    reset_openai_client()
    return VectorStoreService()


def _empty_queue(url: str) -> None:
    # PurgeQueue may run once a minute only; delete what is there instead.
    sqs = boto3.client("sqs")
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _upstream_store_ids(fake: FakeOpenAI) -> list[str]:
    import openai

    client = openai.OpenAI(api_key="sk-test", base_url=fake.api_base)
    return [s.id for s in client.vector_stores.list()]


def _upstream_file_ids(fake: FakeOpenAI) -> list[str]:
    import openai

    client = openai.OpenAI(api_key="sk-test", base_url=fake.api_base)
    return [f.id for f in client.files.list()]


def _ingest_until_final(service: VectorStoreService, store_id: str, file_id: str, timeout: float = 10.0):
    """Run the worker on the jobs queue, one message at a time, until the file's status is final.

    Returns the file and the statuses it was seen in, in order (the first one before any job ran).
    """
    deadline = time.monotonic() + timeout
    statuses = [service.get_file(store_id, file_id).status]
    while time.monotonic() < deadline:
        _, records = worker.deliver(max_n=1)
        file = service.get_file(store_id, file_id)
        if statuses[-1] != file.status:
            statuses.append(file.status)
        if file.status in ("completed", "failed", "cancelled"):
            return file, statuses
        if not records:
            time.sleep(0.05)
    raise AssertionError(f"file still {statuses[-1]} after {timeout}s")


# -- stores -------------------------------------------------------------------------------------------------
def test_create_vector_store_mirrors_upstream(service, fake):
    store = service.create(VectorStoreCreate(name="Docs", metadata={"team": "support"}))

    assert store.openai_store_id in _upstream_store_ids(fake)
    assert (store.status, store.metadata, store.version) == ("ready", {"team": "support"}, 1)
    assert service.get(store.id) == store


def test_create_vector_store_upstream_failure_is_502_and_stores_nothing(service, fake):
    fake.queue_faults("500", path="/v1/vector_stores")

    with pytest.raises(UpstreamError) as exc:
        service.create(VectorStoreCreate(name="Docs"))

    assert exc.value.status == 502
    assert service.list().items == []


def test_get_vector_store_missing_is_not_found(service):
    with pytest.raises(NotFound) as exc:
        service.get("nope")
    assert exc.value.message == "Vector store not found"


def test_list_vector_stores_filters_and_paginates(service):
    for name in ("Docs A", "Docs B", "Other"):
        service.create(VectorStoreCreate(name=name))
    other = service.list(VectorStoreListQuery(name="other")).items[0]
    service.update(other.id, VectorStoreUpdate(status="error"))

    docs = service.list(VectorStoreListQuery(name="DOCS")).items
    errored = service.list(VectorStoreListQuery(status="error")).items
    first = service.list(VectorStoreListQuery(limit=2))
    rest = service.list(VectorStoreListQuery(limit=2, cursor=first.next_cursor))

    assert sorted(s.name for s in docs) == ["Docs A", "Docs B"]
    assert [s.name for s in errored] == ["Other"]
    assert sorted(s.name for s in first.items + rest.items) == ["Docs A", "Docs B", "Other"]
    with pytest.raises(BadRequest):
        service.list(VectorStoreListQuery(cursor="garbage!"))


def test_update_vector_store_renames_upstream(service, fake):
    import openai

    store = service.create(VectorStoreCreate(name="Old"))

    updated = service.update(store.id, VectorStoreUpdate(name="New", metadata={"k": "v"}, version=1))

    remote = openai.OpenAI(api_key="sk-test", base_url=fake.api_base).vector_stores.retrieve(
        store.openai_store_id
    )
    assert (updated.name, updated.metadata, updated.version) == ("New", {"k": "v"}, 2)
    assert remote.name == "New"


def test_update_vector_store_stale_version_conflicts(service):
    store = service.create(VectorStoreCreate(name="S"))
    service.update(store.id, VectorStoreUpdate(name="S2"))
    with pytest.raises(Conflict):
        service.update(store.id, VectorStoreUpdate(name="S3"), if_match=1)
    with pytest.raises(NotFound):
        service.update("nope", VectorStoreUpdate(name="x"))


def test_delete_vector_store_removes_upstream_store_and_owned_files(service, fake):
    store = service.create(VectorStoreCreate(name="Docs"))
    file = service.add_file(store.id, VectorStoreFileCreate(name="a.txt", file_data=TEXT))
    file, _ = _ingest_until_final(service, store.id, file.id)
    assert file.openai_file_id in _upstream_file_ids(fake)

    ack = service.delete(store.id)

    assert ack.message == "Vector store deleted"
    assert store.openai_store_id not in _upstream_store_ids(fake)
    assert file.openai_file_id not in _upstream_file_ids(fake)
    assert VectorStoreRepository().all_files(store.id) == []
    with pytest.raises(NotFound):
        service.get(store.id)
    with pytest.raises(NotFound):
        service.delete(store.id)


# -- files --------------------------------------------------------------------------------------------------
def test_add_vector_store_file_is_pending_then_completed_by_the_worker(service, fake):
    store = service.create(VectorStoreCreate(name="Docs"))

    added = service.add_file(store.id, VectorStoreFileCreate(name="notes.txt", file_data=TEXT))

    assert (added.status, added.size, added.mime_type) == ("pending", 18, "text/plain")
    assert added.job_id and added.openai_file_id is None
    assert worker.queue_depth(get_settings().jobs_queue_url) == 1  # the file_ingest job's message
    final, statuses = _ingest_until_final(service, store.id, added.id)
    assert final.status == "completed" and final.openai_file_id
    assert statuses == ["pending", "in_progress", "completed"]


def test_add_vector_store_file_large_is_uploaded_during_the_request(service, fake):
    small_inline = get_settings().model_copy(update={"admin_inline_file_bytes": 8})
    service = VectorStoreService(settings=small_inline)
    store = service.create(VectorStoreCreate(name="Docs"))

    added = service.add_file(store.id, VectorStoreFileCreate(name="notes.txt", file_data=TEXT))

    assert added.status == "pending" and added.openai_file_id in _upstream_file_ids(fake)
    final, _ = _ingest_until_final(service, store.id, added.id)
    assert final.status == "completed" and final.openai_file_id == added.openai_file_id


def test_add_vector_store_file_existing_upstream_file_is_attached_and_kept_on_delete(service, fake):
    uploaded = OpenAIFileService().upload(OpenAIFileUpload(name="shared.txt", file_data=TEXT))
    store = service.create(VectorStoreCreate(name="Docs"))

    added = service.add_file(store.id, VectorStoreFileCreate(name="shared.txt", openai_file_id=uploaded.id))
    final, _ = _ingest_until_final(service, store.id, added.id)
    service.delete_file(store.id, added.id)

    assert (added.status, added.openai_file_id, added.size) == ("pending", uploaded.id, 18)
    assert final.status == "completed"
    assert uploaded.id in _upstream_file_ids(fake)  # not ours to delete


def test_add_vector_store_file_unknown_upstream_file_is_422(service):
    store = service.create(VectorStoreCreate(name="Docs"))
    with pytest.raises(ValidationFailed) as exc:
        service.add_file(store.id, VectorStoreFileCreate(name="x.txt", openai_file_id="file-missing"))
    assert exc.value.details[0]["loc"] == ["body", "openai_file_id"]
    assert service.list_files(store.id).items == []


def test_add_vector_store_file_over_the_limit_is_413(service):
    store = service.create(VectorStoreCreate(name="Docs"))
    tiny = VectorStoreService(settings=get_settings().model_copy(update={"admin_max_file_bytes": 10}))
    with pytest.raises(PayloadTooLarge):
        tiny.add_file(store.id, VectorStoreFileCreate(name="big.txt", file_data=TEXT))
    assert service.list_files(store.id).items == []


def test_add_vector_store_file_bad_base64_is_422(service):
    store = service.create(VectorStoreCreate(name="Docs"))
    with pytest.raises(ValidationFailed):
        service.add_file(store.id, VectorStoreFileCreate(name="x.txt", file_data="not base64!"))


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x.txt"},
        {"name": "x.txt", "file_data": TEXT, "openai_file_id": "file-1"},
        {"file_data": TEXT},
        {"name": "../etc/passwd", "file_data": TEXT},
        {"name": "x.txt", "openai_file_id": "bad id with spaces"},
    ],
)
def test_add_vector_store_file_invalid_body_refused(body):
    with pytest.raises(ValidationError):
        VectorStoreFileCreate.model_validate(body)


def test_add_vector_store_file_missing_store_is_not_found(service):
    with pytest.raises(NotFound):
        service.add_file("nope", VectorStoreFileCreate(name="x.txt", file_data=TEXT))


def test_add_vector_store_file_enqueue_failure_leaves_nothing(service, fake, monkeypatch):
    store = service.create(VectorStoreCreate(name="Docs"))
    broken = get_settings().jobs_queue_url + "-gone"
    from chatbot.services.jobs import JobService

    jobs = JobService(settings=get_settings().model_copy(update={"jobs_queue_url": broken}))
    service = VectorStoreService(enqueue=jobs.enqueue)

    with pytest.raises(ServiceUnavailable):
        service.add_file(store.id, VectorStoreFileCreate(name="x.txt", file_data=TEXT))

    assert service.list_files(store.id).items == []


def test_list_vector_store_files_filters_by_status(service):
    store = service.create(VectorStoreCreate(name="Docs"))
    done = service.add_file(store.id, VectorStoreFileCreate(name="a.txt", file_data=TEXT))
    _ingest_until_final(service, store.id, done.id)
    pending = service.add_file(store.id, VectorStoreFileCreate(name="b.txt", file_data=TEXT))

    only_pending = service.list_files(store.id, VectorStoreFileListQuery(status="pending")).items
    everything = service.list_files(store.id).items

    assert [f.id for f in only_pending] == [pending.id]
    assert sorted(f.name for f in everything) == ["a.txt", "b.txt"]
    with pytest.raises(NotFound):
        service.list_files("nope")


def test_poll_file_status_refreshes_from_upstream(service, fake):
    store = service.create(VectorStoreCreate(name="Docs"))
    added = service.add_file(store.id, VectorStoreFileCreate(name="a.txt", file_data=TEXT))
    # Run only the ingest job: the file is attached upstream and `in_progress` here.
    _, records = worker.deliver(max_n=1)
    assert records and service.get_file(store.id, added.id).status == "in_progress"
    time.sleep(0.2)  # the fake finishes ingesting

    by_store = service.poll_file_status(added.id, store.id)
    by_file_id_only = service.poll_file_status(added.id)

    assert by_store.status == "completed" and by_file_id_only.status == "completed"
    with pytest.raises(NotFound):
        service.poll_file_status("nope")


def test_poll_file_status_before_upload_returns_pending(service):
    store = service.create(VectorStoreCreate(name="Docs"))
    added = service.add_file(store.id, VectorStoreFileCreate(name="a.txt", file_data=TEXT))
    assert service.poll_file_status(added.id, store.id).status == "pending"


def test_delete_vector_store_file_detaches_and_deletes_owned_upstream_file(service, fake):
    import openai

    store = service.create(VectorStoreCreate(name="Docs"))
    added = service.add_file(store.id, VectorStoreFileCreate(name="a.txt", file_data=TEXT))
    final, _ = _ingest_until_final(service, store.id, added.id)

    ack = service.delete_file(store.id, added.id)

    client = openai.OpenAI(api_key="sk-test", base_url=fake.api_base)
    attached = [f.id for f in client.vector_stores.files.list(vector_store_id=store.openai_store_id)]
    assert ack.message == "File deleted"
    assert final.openai_file_id not in attached and final.openai_file_id not in _upstream_file_ids(fake)
    with pytest.raises(NotFound):
        service.delete_file(store.id, added.id)


def test_sync_vector_stores_imports_and_refreshes(service, fake):
    import openai

    client = openai.OpenAI(api_key="sk-test", base_url=fake.api_base)
    remote = client.vector_stores.create(name="Made elsewhere")
    known = service.create(VectorStoreCreate(name="Known"))

    first = service.sync()
    client.vector_stores.update(known.openai_store_id, name="Renamed elsewhere")
    second = service.sync()
    third = service.sync()

    names = {s.openai_store_id: s.name for s in service.list().items}
    assert (first.synced, second.synced, third.synced) == (1, 1, 0)
    assert names == {remote.id: "Made elsewhere", known.openai_store_id: "Renamed elsewhere"}


# -- the upstream's files -----------------------------------------------------------------------------------
def test_upload_list_delete_openai_files(service, fake):
    files = OpenAIFileService()

    uploaded = files.upload(OpenAIFileUpload(name="a.txt", file_data=TEXT, purpose="assistants"))
    listed = files.list(OpenAIFileListQuery(purpose="assistants")).items
    ack = files.delete(uploaded.id)

    assert (uploaded.filename, uploaded.bytes, uploaded.purpose) == ("a.txt", 18, "assistants")
    assert uploaded.id in [f.id for f in listed]
    assert ack.message == "File deleted" and uploaded.id not in _upstream_file_ids(fake)
    with pytest.raises(NotFound):
        files.delete(uploaded.id)


def test_upload_openai_file_over_the_limit_is_413(service):
    files = OpenAIFileService(settings=get_settings().model_copy(update={"admin_max_file_bytes": 4}))
    with pytest.raises(PayloadTooLarge):
        files.upload(OpenAIFileUpload(name="a.txt", file_data=TEXT))
