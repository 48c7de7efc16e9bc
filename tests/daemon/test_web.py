"""The worker's web server over real loopback sockets: health, readiness, metrics, webhooks."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from daemon.errors import DaemonError
from daemon.metrics import Metrics
from daemon.sandbox import WebhookTarget, run_crm, sign
from daemon.web import ListenError, WebhookSpec, WebServer
from tests.daemon.sandbox.helpers import eventually

SECRET = "whsec-web-test-3f9a"
NOW = 1_700_000_000.0

Trigger = tuple[str, str, str, bool]


def crm_spec(**overrides: Any) -> WebhookSpec:
    options: dict[str, Any] = {
        "secret": SecretStr(SECRET),
        "entities": {"contact": "contact", "company": "company"},
    }
    return WebhookSpec(**(options | overrides))


class Recorder:
    """An ``on_trigger`` that remembers what it was called with."""

    def __init__(self) -> None:
        self.calls: list[Trigger] = []

    async def __call__(self, system: str, entity: str, external_id: str, hint: bool) -> None:
        self.calls.append((system, entity, external_id, hint))


@pytest.fixture
def triggers() -> Recorder:
    return Recorder()


@pytest.fixture
async def server(triggers: Recorder) -> AsyncIterator[WebServer]:
    helpdesk = WebhookSpec(
        secret=SecretStr("other-secret"),
        entities={"ticket": "ticket", "user": "user"},
        signature_header="X-Hub-Signature",
        timestamp_header="X-Hub-Time",
        signature_prefix="sha256=",
        id_at="data.id",
        event_at="type",
        tolerance_s=60,
    )
    async with WebServer(
        metrics=Metrics(process=False),
        webhooks={"crm": crm_spec(), "helpdesk": helpdesk},
        on_trigger=triggers,
        clock=lambda: NOW,
    ) as running:
        yield running


@pytest.fixture
async def client(server: WebServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        yield client


def signed(payload: Any, *, at: float = NOW, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """A body and the headers the simulated CRM would send with it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    timestamp = str(int(at))
    headers = {"X-Timestamp": timestamp, "X-Signature": sign(secret, timestamp, body),
               "Content-Type": "application/json"}
    return body, headers


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None when it is absent."""
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return None


async def webhook_count(client: httpx.AsyncClient, system: str, outcome: str) -> float | None:
    text = (await client.get("/metrics")).text
    return sample(text, "syncline_webhooks_total", outcome=outcome, system=system)


# -- health, readiness, metrics -------------------------------------------------------------


async def test_health_is_ok_while_running(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_follows_the_readiness_callback() -> None:
    waiting = ["kafka", "lane crm/contact"]
    async with (
        WebServer(metrics=Metrics(process=False), ready=lambda: waiting) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        response = await client.get("/ready")
        assert response.status_code == 503
        assert response.json() == {"status": "starting", "waiting_for": waiting}

        waiting.clear()
        response = await client.get("/ready")
        assert response.status_code == 200
        assert response.json() == {"status": "ready"}


async def test_ready_without_a_callback_is_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ready")).status_code == 200


async def test_metrics_are_prometheus_text(server: WebServer, client: httpx.AsyncClient) -> None:
    server.metrics.count_observation("crm", "contact", "observed")
    server.metrics.count_write("helpdesk", "contact", "update", "stale")
    server.metrics.lane_poll_seconds.labels("crm", "contact").observe(0.2)
    server.metrics.lane_behind.labels("crm", "contact").set(3)

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE syncline_observations_total counter" in text
    assert sample(text, "syncline_observations_total",
                  system="crm", entity="contact", kind="observed") == 1
    assert sample(text, "syncline_writes_total", system="helpdesk", entity="contact",
                  op="update", outcome="stale") == 1
    assert sample(text, "syncline_lane_poll_seconds_count", system="crm", entity="contact") == 1
    assert sample(text, "syncline_lane_behind", system="crm", entity="contact") == 3
    for name in ("echoes_suppressed_total", "http_requests_total", "lane_cursor_lag_seconds",
                 "merge_inputs_total", "dead_letters_total"):
        assert f"# HELP syncline_{name} " in text
    # Every webhook outcome of a configured system is there from the start, at zero.
    assert sample(text, "syncline_webhooks_total", system="crm", outcome="bad_signature") == 0


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.count_webhook("crm", "accepted")

    assert b'syncline_webhooks_total{outcome="accepted",system="crm"} 1.0' in first.render()[0]
    assert b"syncline_webhooks_total{" not in second.render()[0]
    assert b"process_resident_memory_bytes" in first.render()[0]


# -- webhooks: accepted ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "record_id", "expected"),
    [
        ("contact.updated", "ct_00000001", ("crm", "contact", "ct_00000001", False)),
        ("contact.created", "ct_00000002", ("crm", "contact", "ct_00000002", False)),
        ("company.deleted", "co_00000001", ("crm", "company", "co_00000001", True)),
    ],
)
async def test_a_signed_webhook_triggers_a_read(
    client: httpx.AsyncClient, triggers: Recorder, event: str, record_id: str, expected: Trigger
) -> None:
    body, headers = signed({"event": event, "id": record_id, "occurred_at": "2024-01-01T00:00Z"})

    response = await client.post("/webhooks/crm", content=body, headers=headers)

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    assert triggers.calls == [expected]
    assert await webhook_count(client, "crm", "accepted") == 1


async def test_the_spec_says_where_the_event_and_id_are(
    client: httpx.AsyncClient, triggers: Recorder
) -> None:
    body = json.dumps({"type": "ticket.deleted", "data": {"id": 42}}).encode()
    timestamp = str(int(NOW) - 30)
    headers = {"X-Hub-Time": timestamp,
               "X-Hub-Signature": "sha256=" + sign("other-secret", timestamp, body).upper()}

    response = await client.post("/webhooks/helpdesk", content=body, headers=headers)

    assert response.status_code == 202, response.text
    assert triggers.calls == [("helpdesk", "ticket", "42", True)]


async def test_a_plain_function_can_be_the_trigger() -> None:
    calls: list[Trigger] = []

    def on_trigger(system: str, entity: str, external_id: str, hint: bool) -> None:
        calls.append((system, entity, external_id, hint))

    async with (
        WebServer(metrics=Metrics(process=False), webhooks={"crm": crm_spec()},
                  on_trigger=on_trigger, clock=lambda: NOW) as server,
        httpx.AsyncClient() as client,
    ):
        body, headers = signed({"event": "contact.updated", "id": "ct_9"})
        response = await client.post(server.webhook_url("crm"), content=body, headers=headers)

    assert response.status_code == 202
    assert calls == [("crm", "contact", "ct_9", False)]


def test_the_longest_event_prefix_names_the_entity() -> None:
    spec = crm_spec(entities={"contact": "contact", "contact.note": "note"})

    assert spec.entity_of("contact.updated") == "contact"
    assert spec.entity_of("contact.note.created") == "note"
    assert spec.entity_of("contactnote.created") is None
    assert spec.entity_of("deal.created") is None


def test_the_spec_signs_like_the_simulated_crm() -> None:
    body = b'{"event":"contact.updated","id":"ct_1"}'
    assert crm_spec().signature("1700000000", body) == sign(SECRET, "1700000000", body)


# -- webhooks: refused ----------------------------------------------------------------------

GOOD = {"event": "contact.updated", "id": "ct_00000001"}


def wrong_signature() -> tuple[bytes, dict[str, str]]:
    return signed(GOOD, secret="not-the-secret")


def tampered_body() -> tuple[bytes, dict[str, str]]:
    _, headers = signed(GOOD)
    return json.dumps({"event": "contact.deleted", "id": "ct_00000001"}).encode(), headers


def without(header: str) -> tuple[bytes, dict[str, str]]:
    body, headers = signed(GOOD)
    del headers[header]
    return body, headers


def non_ascii_signature() -> tuple[bytes, dict[str, str | bytes]]:
    body, headers = signed(GOOD)
    return body, {**headers, "X-Signature": ("é" * 64).encode()}


def timestamp_not_a_number() -> tuple[bytes, dict[str, str]]:
    body = json.dumps(GOOD).encode()
    return body, {"X-Timestamp": "yesterday", "X-Signature": sign(SECRET, "yesterday", body)}


@pytest.mark.parametrize(
    ("make", "status", "outcome"),
    [
        pytest.param(wrong_signature, 401, "bad_signature", id="wrong-secret"),
        pytest.param(tampered_body, 401, "bad_signature", id="tampered-body"),
        pytest.param(lambda: without("X-Signature"), 401, "bad_signature", id="no-signature"),
        pytest.param(lambda: without("X-Timestamp"), 401, "bad_signature", id="no-timestamp"),
        pytest.param(non_ascii_signature, 401, "bad_signature", id="non-ascii-signature"),
        pytest.param(lambda: signed(GOOD, at=NOW - 301), 401, "stale_timestamp", id="old"),
        pytest.param(lambda: signed(GOOD, at=NOW + 301), 401, "stale_timestamp", id="future"),
        pytest.param(timestamp_not_a_number, 401, "stale_timestamp", id="timestamp-not-a-number"),
        pytest.param(lambda: signed(b"not json {"), 400, "malformed", id="not-json"),
        pytest.param(lambda: signed(b"\xff\xfe"), 400, "malformed", id="not-utf8"),
        pytest.param(lambda: signed([GOOD]), 400, "malformed", id="array"),
        pytest.param(lambda: signed({"id": "ct_1"}), 400, "malformed", id="no-event"),
        pytest.param(lambda: signed({"event": "contact.updated"}), 400, "malformed", id="no-id"),
        pytest.param(lambda: signed({"event": "contact.updated", "id": True}), 400, "malformed",
                     id="bool-id"),
        pytest.param(lambda: signed({"event": "contact.updated", "id": ""}), 400, "malformed",
                     id="empty-id"),
    ],
)
async def test_a_refused_webhook_triggers_nothing(
    client: httpx.AsyncClient,
    triggers: Recorder,
    make: Any,
    status: int,
    outcome: str,
) -> None:
    body, headers = make()

    response = await client.post("/webhooks/crm", content=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.json()["error"] == outcome
    assert response.json()["message"]
    assert triggers.calls == []
    assert await webhook_count(client, "crm", outcome) == 1
    assert await webhook_count(client, "crm", "accepted") == 0


async def test_an_event_of_no_known_entity_is_ignored_not_refused(
    client: httpx.AsyncClient, triggers: Recorder
) -> None:
    # The sender did nothing wrong: a 4xx would make it retry, or disable the hook.
    body, headers = signed({"event": "deal.updated", "id": "d_1"})

    response = await client.post("/webhooks/crm", content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored"
    assert "deal.updated" in response.json()["reason"]
    assert "company, contact" in response.json()["reason"]
    assert triggers.calls == []
    assert await webhook_count(client, "crm", "ignored") == 1
    assert await webhook_count(client, "crm", "malformed") == 0


async def test_the_error_says_what_is_wrong(client: httpx.AsyncClient) -> None:
    body, headers = signed(GOOD, at=NOW - 400)
    response = await client.post("/webhooks/crm", content=body, headers=headers)
    assert response.json()["message"] == (
        "the X-Timestamp header is 400s old (tolerance 300s)"
    )


async def test_an_unknown_system_is_404(client: httpx.AsyncClient, triggers: Recorder) -> None:
    body, headers = signed(GOOD)

    response = await client.post("/webhooks/erp", content=body, headers=headers)

    assert response.status_code == 404
    assert response.json()["error"] == "unknown_system"
    assert triggers.calls == []
    # A name from the URL never becomes a label value.
    assert await webhook_count(client, "(unknown)", "unknown_system") == 1
    assert 'system="erp"' not in (await client.get("/metrics")).text


async def test_a_failing_trigger_is_a_503_so_the_sender_may_retry() -> None:
    async def on_trigger(system: str, entity: str, external_id: str, hint: bool) -> None:
        raise RuntimeError("queue closed")

    async with (
        WebServer(metrics=Metrics(process=False), webhooks={"crm": crm_spec()},
                  on_trigger=on_trigger, clock=lambda: NOW) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        body, headers = signed(GOOD)
        response = await client.post("/webhooks/crm", content=body, headers=headers)

        assert response.status_code == 503
        assert await webhook_count(client, "crm", "trigger_failed") == 1


async def test_neither_secret_nor_signature_is_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good_body, good_headers = signed(GOOD)
    bad_body, bad_headers = wrong_signature()
    old_body, old_headers = signed(GOOD, at=NOW - 1000)
    junk_body, junk_headers = signed(b"not json")
    for body, headers in ((good_body, good_headers), (bad_body, bad_headers),
                          (old_body, old_headers), (junk_body, junk_headers)):
        await client.post("/webhooks/crm", content=body, headers=headers)

    logged = caplog.text + "".join(
        f"{record.getMessage()} {record.args} {record.exc_text}" for record in caplog.records
    )
    assert "refused" in logged  # the rejections were logged, just not the secrets
    assert SECRET not in logged
    for headers in (good_headers, bad_headers, old_headers, junk_headers):
        assert headers["X-Signature"] not in logged
    assert "accepted" in logged


# -- the server itself ----------------------------------------------------------------------


async def test_a_taken_port_is_a_clear_daemon_error(server: WebServer) -> None:
    with pytest.raises(ListenError) as raised:
        async with WebServer(port=server.port, metrics=Metrics(process=False)):
            pass

    assert isinstance(raised.value, DaemonError)
    assert f"127.0.0.1:{server.port}" in str(raised.value)
    assert "address already in use" in str(raised.value)


async def test_more_routes_can_be_added_before_start() -> None:
    routes = web.RouteTableDef()

    @routes.get("/review")
    async def review(request: web.Request) -> web.Response:
        return web.Response(text="conflicts")

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    sub = web.Application()
    sub.router.add_get("/ping", ping)
    server = WebServer(metrics=Metrics(process=False))
    server.add_routes(routes)
    server.add_subapp("/extra", sub)
    async with server, httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/review")).text == "conflicts"
        assert (await client.get("/extra/ping")).text == "pong"
        assert (await client.get("/health")).status_code == 200
        with pytest.raises(RuntimeError, match="already started"):
            server.add_routes(routes)


def test_webhooks_need_a_trigger() -> None:
    with pytest.raises(ValueError, match="on_trigger"):
        WebServer(webhooks={"crm": crm_spec()})


# -- with the real simulated CRM ------------------------------------------------------------


async def test_an_edit_in_the_simulated_crm_triggers_a_read(triggers: Recorder) -> None:
    async with WebServer(
        metrics=Metrics(process=False), webhooks={"crm": crm_spec()}, on_trigger=triggers
    ) as server:
        target = WebhookTarget(server.webhook_url("crm"), SECRET)
        async with run_crm(token="t", webhook=target) as crm, httpx.AsyncClient() as client:
            response = await client.post(
                f"{crm.url}/_admin/edit/contacts",
                json={"op": "create", "fields": {"email": "a@example.com", "full_name": "A"}},
            )
            assert response.status_code == 201, response.text
            record_id = response.json()["record"]["id"]

            async def triggered() -> bool:
                return bool(triggers.calls)

            await eventually(triggered)
            assert triggers.calls == [("crm", "contact", record_id, False)]

            response = await client.post(f"{crm.url}/_admin/edit/contacts",
                                         json={"op": "delete", "id": record_id})
            assert response.status_code == 200, response.text

            async def deleted() -> bool:
                return len(triggers.calls) == 2

            await eventually(deleted)
            assert triggers.calls[1] == ("crm", "contact", record_id, True)
            stats = (await client.get(f"{crm.url}/_admin/stats")).json()["webhooks"]
            assert stats == {"sent": 2, "delivered": 2, "failed": 0}


# -- webhooks from senders that cannot sign -------------------------------------------------

NOCO_SECRET = "noco-hook-secret-71c2"
NOT_IT = "the X-Hook-Secret header is not the shared secret"
NOCO_EVENTS = {"records.after.insert": "created", "records.after.update": "updated",
               "records.after.delete": "deleted"}


def noco_spec(**overrides: Any) -> WebhookSpec:
    """NocoDB's shape: the table in the URL, the rows in an array, its own event names."""
    options: dict[str, Any] = {
        "secret": SecretStr(NOCO_SECRET), "routed": frozenset({"contact"}),
        "scheme": "header", "secret_header": "X-Hook-Secret",
        "events": NOCO_EVENTS, "event_at": "type", "id_at": "data.rows[*].Id",
    }
    return WebhookSpec(**(options | overrides))


def noco_body(event: str, *ids: Any) -> bytes:
    return json.dumps({"type": event, "id": "hook-1", "version": "v3", "data": {
        "table_name": "Contacts", "rows": [{"Id": i, "Email": f"{i}@x"} for i in ids]}}).encode()


@pytest.fixture
async def plain(triggers: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    """A server with a header-secret system (nocodb) and a query-secret one (forms)."""
    forms = noco_spec(scheme="query", secret_param="token", secret=SecretStr("q-secret"),
                      id_at="payload.ids[]", event_at="kind", events=None)
    async with (
        WebServer(metrics=Metrics(process=False),
                  webhooks={"nocodb": noco_spec(), "forms": forms},
                  on_trigger=triggers) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as client,
    ):
        yield client


async def test_a_good_header_secret_and_an_array_of_ids_read_each_record(
    plain: httpx.AsyncClient, triggers: Recorder
) -> None:
    response = await plain.post("/webhooks/nocodb/contact",
                                content=noco_body("records.after.update", 3, 7, 3, 12),
                                headers={"X-Hook-Secret": NOCO_SECRET})

    assert response.status_code == 202, response.text
    assert response.json()["ids"] == ["3", "7", "12"]
    # One read per distinct id, in the order the sender named them.
    assert triggers.calls == [("nocodb", "contact", "3", False), ("nocodb", "contact", "7", False),
                              ("nocodb", "contact", "12", False)]
    assert await webhook_count(plain, "nocodb", "accepted") == 1


async def test_configured_event_names_say_what_happened(
    plain: httpx.AsyncClient, triggers: Recorder
) -> None:
    for event in ("records.after.insert", "records.after.delete"):
        response = await plain.post("/webhooks/nocodb/contact", content=noco_body(event, 5),
                                    headers={"X-Hook-Secret": NOCO_SECRET})
        assert response.status_code == 202, response.text

    assert triggers.calls == [("nocodb", "contact", "5", False), ("nocodb", "contact", "5", True)]


async def test_an_unknown_event_name_is_answered_2xx_counted_and_reads_nothing(
    plain: httpx.AsyncClient, triggers: Recorder
) -> None:
    response = await plain.post("/webhooks/nocodb/contact",
                                content=noco_body("records.after.bulkInsert", 5),
                                headers={"X-Hook-Secret": NOCO_SECRET})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored"
    assert "records.after.bulkInsert" in response.json()["reason"]
    assert triggers.calls == []
    assert await webhook_count(plain, "nocodb", "ignored") == 1
    assert await webhook_count(plain, "nocodb", "accepted") == 0


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param({"X-Hook-Secret": "noco-hook-secret-71c3"}, NOT_IT,
                     id="bad-secret"),
        pytest.param({"X-Hook-Secret": NOCO_SECRET + "x"}, NOT_IT,
                     id="longer-secret"),
        pytest.param({"X-Hook-Secret": ("é" + NOCO_SECRET).encode()}, NOT_IT,
                     id="non-ascii"),
        pytest.param({"X-Hook-Secret": ""}, "missing the X-Hook-Secret header", id="empty"),
        pytest.param({}, "missing the X-Hook-Secret header", id="missing"),
        pytest.param({"X-Signature": NOCO_SECRET}, "missing the X-Hook-Secret header",
                     id="secret-in-another-header"),
    ],
)
async def test_a_bad_or_missing_secret_is_401_counted_and_reads_nothing(
    plain: httpx.AsyncClient, triggers: Recorder, headers: dict[str, Any], message: str
) -> None:
    response = await plain.post("/webhooks/nocodb/contact",
                                content=noco_body("records.after.update", 1), headers=headers)

    assert response.status_code == 401, response.text
    assert response.json() == {"error": "bad_secret", "message": message}
    assert triggers.calls == []
    assert await webhook_count(plain, "nocodb", "bad_secret") == 1
    assert await webhook_count(plain, "nocodb", "accepted") == 0


async def test_a_secret_in_the_query_string(plain: httpx.AsyncClient, triggers: Recorder) -> None:
    body = json.dumps({"kind": "contact.changed", "payload": {"ids": ["a", "b"]}}).encode()

    wrong = await plain.post("/webhooks/forms/contact?token=nope", content=body)
    missing = await plain.post("/webhooks/forms/contact", content=body)
    # The header scheme's secret is no use to a query-scheme system.
    elsewhere = await plain.post("/webhooks/forms/contact", content=body,
                                 headers={"X-Hook-Secret": "q-secret"})
    good = await plain.post("/webhooks/forms/contact?token=q-secret", content=body)

    assert [r.status_code for r in (wrong, missing, elsewhere)] == [401, 401, 401]
    assert missing.json()["message"] == "missing the query parameter token"
    assert good.status_code == 202, good.text
    assert triggers.calls == [("forms", "contact", "a", False), ("forms", "contact", "b", False)]
    assert await webhook_count(plain, "forms", "bad_secret") == 3


async def test_a_replayed_delivery_only_reads_again(
    plain: httpx.AsyncClient, triggers: Recorder
) -> None:
    body = noco_body("records.after.update", 9)
    for _ in range(3):
        response = await plain.post("/webhooks/nocodb/contact", content=body,
                                    headers={"X-Hook-Secret": NOCO_SECRET})
        assert response.status_code == 202

    assert triggers.calls == [("nocodb", "contact", "9", False)] * 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(noco_body("records.after.update"), "an empty list", id="no-rows"),
        pytest.param(noco_body("records.after.update", 1, True), "not all ids", id="bool-in-list"),
        pytest.param(noco_body("records.after.update", 1, ""), "not all ids", id="empty-in-list"),
        pytest.param(json.dumps({"type": "records.after.update", "data": {"rows": [{"Id": {}}]}})
                     .encode(), "no record id", id="object-id"),
    ],
)
async def test_ids_that_are_not_ids_are_400_and_none_is_read(
    plain: httpx.AsyncClient, triggers: Recorder, body: bytes, message: str
) -> None:
    response = await plain.post("/webhooks/nocodb/contact", content=body,
                                headers={"X-Hook-Secret": NOCO_SECRET})

    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert triggers.calls == []


async def test_an_entity_the_system_does_not_have_is_404(
    plain: httpx.AsyncClient, triggers: Recorder
) -> None:
    response = await plain.post("/webhooks/nocodb/invoice",
                                content=noco_body("records.after.update", 1),
                                headers={"X-Hook-Secret": NOCO_SECRET})

    assert response.status_code == 404
    assert response.json()["error"] == "unknown_system"
    assert triggers.calls == []


def test_a_path_that_is_not_jmespath_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="not a JMESPath expression"):
        noco_spec(id_at="data..rows")
