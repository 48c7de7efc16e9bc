"""Loading the configuration file: what is accepted, and what each mistake says."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import Config, load_config
from daemon.errors import ConfigError
from streams.topics import Topics

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {})
    assert caught.value.file == str(path)
    return list(caught.value.problems)


def test_the_example_config_loads() -> None:
    env = {"CRM_TOKEN": "tok-3141", "CRM_WEBHOOK_SECRET": "sec-2718",
           "SYNCLINE_REVIEW_TOKEN": "rev-1732",
           "HELPDESK_API_KEY": "key-1414"}
    config = load_config(REPO / "examples" / "syncline.yaml", env)

    assert config.kafka.bootstrap == "127.0.0.1:19092"
    assert config.kafka.topic_prefix == "syncline"
    assert list(config.systems) == ["crm", "helpdesk"]
    assert config.catalog()["contact"].match_on == ("email",)
    shown = repr(config) + str(config) + config.model_dump_json()
    assert all(secret not in shown for secret in env.values())


def test_defaults_fill_everything_but_the_bootstrap(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "kafka: {bootstrap: 'a:1, b:2'}\n"), {})

    assert config == Config.model_validate(
        {"kafka": {"bootstrap": "a:1,b:2", "topic_prefix": "syncline", "client_id": "syncline"}}
    )
    assert config.kafka.settings().bootstrap == "a:1,b:2"
    assert config.systems == {}


def test_a_system_without_entities_has_no_lane_but_is_a_system(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "kafka: {bootstrap: 'k:9092'}\n"
        "systems:\n  crm: {connector: rest, base_url: 'http://localhost:8101/'}\n"
        "entities:\n  contact: {match_on: [email], fields: {email: {crm: email}}}\n",
    )

    config = load_config(path, {})

    assert config.systems["crm"].connector == "rest"
    assert config.systems["crm"].base_url == "http://localhost:8101"
    assert config.systems["crm"].entities == {}
    # Entities are checked for real: tests/daemon/test_config_entities.py.
    assert config.entities["contact"].match_on == ["email"]


def test_the_sasl_password_comes_from_the_named_environment_variable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "kafka:\n"
        "  bootstrap: k:9093\n"
        "  security_protocol: SASL_PLAINTEXT\n"
        "  sasl: {mechanism: SCRAM-SHA-512, username: syncline, password_env: KAFKA_PW}\n",
    )

    config = load_config(path, {"KAFKA_PW": "s3cret"})
    settings = config.kafka.settings()

    assert settings.sasl is not None and settings.sasl.password is not None
    assert settings.sasl.password.get_secret_value() == "s3cret"
    assert settings.client_options()["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(config)
    assert "s3cret" not in repr(settings)


SASL_FROM_KAFKA_PW = ("kafka:\n"
                      "  bootstrap: k:9093\n"
                      "  security_protocol: SASL_SSL\n"
                      "  sasl: {username: syncline, password_env: KAFKA_PW}\n")
"""A config whose Kafka password is the secret named by KAFKA_PW."""


def test_a_missing_secret_variable_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, SASL_FROM_KAFKA_PW)

    assert problems(path) == [
        f"{path}:4: kafka.sasl.password_env: environment variable KAFKA_PW is not set "
        "(it should hold the secret, or KAFKA_PW_FILE the path of a file holding it)"
    ]


def test_a_secret_may_come_from_a_file_named_by_the_variable_with_file(tmp_path: Path) -> None:
    path = write(tmp_path, SASL_FROM_KAFKA_PW)
    mounted = tmp_path / "kafka-pw"
    mounted.write_text("from-a-file\n")

    config = load_config(path, {"KAFKA_PW_FILE": str(mounted)})

    sasl = config.kafka.settings().sasl
    password = sasl.password if sasl is not None else None
    assert password is not None and password.get_secret_value() == "from-a-file"
    with pytest.raises(ConfigError, match=r"KAFKA_PW_FILE names .*nope, which cannot be read"):
        load_config(path, {"KAFKA_PW_FILE": str(tmp_path / "nope")})


def test_sasl_must_match_the_security_protocol(tmp_path: Path) -> None:
    sasl_needed = write(tmp_path, "kafka: {bootstrap: 'k:1', security_protocol: SASL_SSL}\n")

    assert problems(sasl_needed) == [
        f"{sasl_needed}:1: kafka.sasl: required when security_protocol is SASL_SSL "
        "(mechanism, username, password_env)"
    ]


def test_tls_files_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not really a certificate", encoding="utf-8")
    path = write(
        tmp_path,
        "kafka:\n  bootstrap: k:9093\n  security_protocol: SSL\n  ssl: {cafile: ca.pem}\n",
    )

    config = load_config(path, {})

    assert config.kafka.ssl is not None
    assert config.kafka.ssl.cafile == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kafka: {}\n", "{f}:1: kafka.bootstrap: required, but missing"),
        ("systems: {}\n", "{f}:1: kafka: required, but missing"),
        ("kafka: 9092\n", "{f}:1: kafka: expected a mapping (key: value), got an integer"),
        (
            "kafka: {bootstrap: 9092}\n",
            "{f}:1: kafka.bootstrap: expected a valid string, got 9092 (an integer)",
        ),
        (
            "kafka:\n  bootstrap: k:1\n  security_protocol: TLS\n",
            "{f}:3: kafka.security_protocol: expected 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' "
            "or 'SASL_SSL', got 'TLS'",
        ),
        (
            "kafka:\n  bootstrap: k:1\n  topic_prefix: 'my prefix'\n",
            "{f}:3: kafka.topic_prefix: expected letters, digits, '.', '_' or '-' "
            "(it starts Kafka topic names), got 'my prefix'",
        ),
        (
            "kafka: {bootstrap: 'k:1'}\nsystems:\n  crm: [rest]\n",
            "{f}:3: systems.crm: expected a mapping (key: value), got a list",
        ),
        (
            "kafka: {bootstrap: 'k:1'}\nsytems: {}\n",
            "{f}:2: sytems: unknown key (allowed: kafka, systems, entities, review, logging, "
            "worker)",
        ),
        (
            "- kafka\n",
            "{f}: expected a mapping at the top level (kafka:, systems:, entities:), got a list",
        ),
        (
            "kafka: {bootstrap: 'k:1'}\nsystems:\n  crm:\n    base_url: http://x\n"
            "    entities:\n      contact:\n        path: /contacts\n"
            "        update: {method: PATCH, idempotency_header: Idempotency-Key}\n",
            "{f}:6: systems.crm.entities.contact: update.idempotency_header: only creates "
            "take an idempotency key (updates and deletes are made safe by reading first)",
        ),
        ("", "{f}: the file is empty; expected at least a kafka: section"),
        (
            "kafka: {bootstrap: [}\n",
            "{f}:1:21: not valid YAML: expected the node content, but found '}' "
            "(while parsing a flow node)",
        ),
    ],
)
def test_each_mistake_is_one_line_naming_file_line_and_path(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)

    assert problems(path) == [expected.replace("{f}", str(path))]


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    assert problems(tmp_path) == [f"{tmp_path}: is a directory, not a configuration file"]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe")
    assert problems(binary) == [f"{binary}: not UTF-8 text (invalid start byte at byte 0)"]


def test_topic_settings_are_read_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  bootstrap: k:1\n  topics:\n    partitions: 12\n"
                 "    replication_factor: 3\n    min_insync_replicas: 2\n"
                 "    retention_ms: 604800000\n")

    topics = load_config(path, {}).kafka.topics

    assert (topics.partitions, topics.replication_factor, topics.min_insync_replicas,
            topics.retention_ms) == (12, 3, 2, 604800000)
    specs = {spec.name: spec for spec in Topics("p").specs(topics)}
    assert specs["p.observations"].replication == 3
    assert specs["p.observations"].config == {"retention.ms": "604800000",
                                              "min.insync.replicas": "2"}
    assert specs["p.records"].config == {"cleanup.policy": "compact",
                                         "min.insync.replicas": "2"}


def test_topic_settings_that_cannot_work_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  bootstrap: k:1\n  topics:\n    partitions: 0\n")
    assert problems(path) == [
        f"{path}:4: kafka.topics.partitions: expected greater than or equal to 1, got 0 "
        "(an integer)"]

    insync = write(tmp_path, "kafka:\n  bootstrap: k:1\n  topics: {min_insync_replicas: 2}\n")
    assert problems(insync) == [
        f"{insync}:3: kafka.topics: min_insync_replicas (2) must not exceed "
        "replication_factor (1): no write could ever be acknowledged"]


def test_a_secret_written_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  bootstrap: k:1\n  security_protocol: SASL_SSL\n"
                 "  sasl: {username: u, password: hunter2}\n")

    assert problems(path) == [
        f"{path}:4: kafka.sasl: secrets are never written in the file: set password_env to "
        "the name of an environment variable holding it"]


# -- webhooks from senders that cannot sign ---------------------------------------------------

HOOKS = ("kafka: {bootstrap: 'k:9092'}\n"
         "systems:\n  nocodb:\n    base_url: 'http://localhost:8420'\n"
         "    webhooks: {secret_env: NOCO_HOOK, %s}\n"
         "    entities: {contact: {path: /records}}\n"
         "entities:\n  contact: {match_on: [email], fields: {email: {nocodb: Email}}}\n")


def test_a_webhook_secret_in_a_header_from_a_file(tmp_path: Path) -> None:
    mounted = tmp_path / "hook-secret"
    mounted.write_text("s3cret\n", encoding="utf-8")
    path = write(tmp_path, HOOKS % (
        "scheme: header, secret_header: X-Hook-Secret, id_at: 'data.rows[*].Id', "
        "event_at: type, events: {records.after.insert: created, records.after.delete: deleted}"))

    hooks = load_config(path, {"NOCO_HOOK_FILE": str(mounted)}).systems["nocodb"].webhooks

    assert hooks is not None
    assert hooks.secret_value.get_secret_value() == "s3cret"
    assert (hooks.scheme, hooks.secret_header, hooks.id_at) == (
        "header", "X-Hook-Secret", "data.rows[*].Id")
    assert hooks.events == {"records.after.insert": "created",
                            "records.after.delete": "deleted"}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        pytest.param("id_at: 'data..rows'", "systems.nocodb.webhooks.id_at: expected a JMESPath "
                     "expression such as data.id or data.rows[*].Id, got 'data..rows'",
                     id="bad-path"),
        pytest.param("events: {records.after.insert: inserted}",
                     "systems.nocodb.webhooks.events.records.after.insert: ", id="bad-kind"),
        pytest.param("scheme: header, secret_param: token", "secret_param: is read only with "
                     "scheme: query (this system has scheme: header)", id="key-of-other-scheme"),
        pytest.param("secret_header: X-Hook", "secret_header: is read only with scheme: header "
                     "(this system has scheme: hmac)", id="header-without-scheme"),
        pytest.param("scheme: basic", "systems.nocodb.webhooks.scheme: ", id="bad-scheme"),
    ],
)
def test_webhook_mistakes_are_named(tmp_path: Path, keys: str, expected: str) -> None:
    found = problems(write(tmp_path, HOOKS % keys), {"NOCO_HOOK": "s"})

    assert len(found) == 1, found
    assert expected in found[0], found
