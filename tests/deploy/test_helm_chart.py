"""The Helm chart in deploy/helm/syncline, rendered by the real helm, read as an operator would.

Each test renders the chart (``helm template``) and checks what matters when it runs: the
command line is one ``syncline run`` accepts, the probes reach endpoints the daemon serves,
the ConfigMap holds a config the daemon's own loader accepts with the secrets read from the
files the Secret provides, replicas respect what the roles allow, and the pods run
unprivileged on a read-only root. ``make test-helm`` builds helm and kubernetes-validate
(deploy/helm/tools.sh) and also validates the manifests against Kubernetes' schemas.

Without helm (``deploy/helm/tools.sh`` not run) the tests are skipped, unless
SYNCLINE_REQUIRE_HELM=1 (``make test-helm``), where a missing helm fails them.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import typing
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
import yaml
from pydantic import BaseModel

from daemon.cli import _listen_address, run, status
from daemon.config import Config, load_config
from daemon.configbase import EnvName
from daemon.web import WebServer

pytestmark = pytest.mark.helm

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "syncline"
PER_ROLE = CHART / "ci" / "per-role-values.yaml"
TOOLS_SH = REPO / "deploy" / "helm" / "tools.sh"
SECRETS_DIR = PurePosixPath("/run/secrets/syncline")


def helm_binary() -> str:
    given = os.environ.get("SYNCLINE_HELM")
    tools = subprocess.run([str(TOOLS_SH), "path"], capture_output=True, text=True,
                           check=True).stdout.strip()
    for candidate in (given, str(Path(tools) / "helm"), shutil.which("helm")):
        if candidate and Path(candidate).is_file():
            return candidate
    message = "helm is not installed: run deploy/helm/tools.sh (or make test-helm)"
    if os.environ.get("SYNCLINE_REQUIRE_HELM") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_binary()


def helm_run(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def value_args(values: tuple[Path, ...], sets: tuple[str, ...]) -> list[str]:
    """helm's arguments for values files and ``--set`` items, in that order."""
    return [*(a for file in values for a in ("--values", str(file))),
            *(a for item in sets for a in ("--set", item))]


def render(helm: str, *values: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args = ["template", "sync", str(CHART), "--namespace", "sync"]
    done = helm_run(helm, *args, *value_args(values, sets))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def refused(helm: str, *values: Path, sets: tuple[str, ...] = ()) -> str:
    """helm template's error for values it must refuse."""
    args = ["template", "sync", str(CHART)]
    done = helm_run(helm, *args, *value_args(values, sets))
    assert done.returncode != 0, f"rendered, but should have refused: {sets}"
    return done.stderr


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def role_of(deployment: dict[str, Any]) -> str:
    args = container(deployment)["args"]
    role: str = args[args.index("--role") + 1]
    return role


# -- layouts and replicas ---------------------------------------------------------------------


def test_by_default_one_deployment_runs_every_role_in_one_replica_replaced_not_rolled(
        helm: str) -> None:
    docs = render(helm)
    deployments = of_kind(docs, "Deployment")
    assert list(deployments) == ["sync-syncline"]
    deployment = deployments["sync-syncline"]
    assert role_of(deployment) == "all"
    assert deployment["spec"]["replicas"] == 1
    # It runs the lanes: the old pod must stop before the new one starts.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert {doc["kind"] for doc in docs} == {
        "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "ServiceAccount",
        "Pod"}  # the Pod is `helm test`'s


def test_per_role_a_deployment_per_role_lanes_alone_and_the_stages_rolling(helm: str) -> None:
    deployments = of_kind(render(helm, PER_ROLE), "Deployment")
    by_role = {role_of(d): d for d in deployments.values()}
    assert sorted(by_role) == ["lanes", "merge", "route"]
    assert by_role["lanes"]["spec"]["replicas"] == 1
    assert by_role["lanes"]["spec"]["strategy"] == {"type": "Recreate"}
    for stage in ("route", "merge"):
        spec = by_role[stage]["spec"]
        assert spec["replicas"] == 4
        # Never more consumers than replicas during a rollout.
        assert spec["strategy"] == {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    # Each Deployment selects only its own pods.
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items()))
                 for d in deployments.values()]
    assert len(set(selectors)) == 3
    for deployment in deployments.values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("sets", [
    ("layout=perRole", "workers.lanes.replicas=2"),
    ("workers.all.replicas=2",),
])
def test_more_than_one_replica_running_the_lanes_is_refused(helm: str,
                                                             sets: tuple[str, ...]) -> None:
    # A second process starting a lane fences the first: two would fight.
    error = refused(helm, sets=sets)
    assert "values don't meet the specifications of the schema" in error
    assert "replicas" in error and "maximum" in error


def test_an_unknown_layout_or_value_is_refused_naming_it(helm: str) -> None:
    assert "layout" in refused(helm, sets=("layout=split",))
    assert "replica" in refused(helm, sets=("workers.route.replica=3",))


def notes(helm: str, *values: Path, sets: tuple[str, ...] = ()) -> str:
    args = ["install", "sync", str(CHART), "--dry-run=client", "--namespace", "sync"]
    done = helm_run(helm, *args, *value_args(values, sets))
    assert done.returncode == 0, done.stderr
    return done.stdout.split("NOTES:", 1)[1]


def config_values(tmp_path: Path, old: str, new: str) -> Path:
    """A values file whose config is the chart's default with ``old`` replaced by ``new``."""
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert old in values["config"]
    file = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    file.write_text(yaml.safe_dump({"config": values["config"].replace(old, new)}),
                    encoding="utf-8")
    return file


def test_stage_replicas_beyond_the_partition_count_are_called_idle(
        helm: str, tmp_path: Path) -> None:
    at_most = notes(helm, sets=("layout=perRole", "workers.route.replicas=4",
                                "workers.merge.replicas=4"))
    assert "WARNING" not in at_most
    beyond = notes(helm, sets=("layout=perRole", "workers.route.replicas=6",
                               "workers.merge.replicas=2"))
    assert ("WARNING: workers.route.replicas is 6 but the topics have 4 partitions" in beyond)
    assert "2 route replica(s) will sit idle" in beyond
    assert "workers.merge" not in beyond
    eight = config_values(tmp_path, "partitions: 4", "partitions: 8")
    assert "WARNING" not in notes(helm, eight, sets=("layout=perRole",
                                                     "workers.route.replicas=6"))


def test_values_document_scaling_in_partitions(helm: str) -> None:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    assert "replicas beyond the partition count" in text
    assert "a lane runs in one process at a time" in text.lower()


# -- the command line and the probes ----------------------------------------------------------


def test_every_command_line_is_one_syncline_run_accepts(helm: str) -> None:
    for values in ((), (PER_ROLE,)):
        for deployment in of_kind(render(helm, *values), "Deployment").values():
            spec = container(deployment)
            assert spec["command"] == ["syncline"]
            assert spec["args"][0] == "run"
            # click parses the arguments exactly as `syncline run` would.
            context = run.make_context("run", list(spec["args"][1:]))
            assert context.params["config_path"] == Path("/etc/syncline/syncline.yaml")
            host, port = _listen_address(context.params["listen"])
            assert host == "0.0.0.0"
            assert spec["ports"] == [{"name": "http", "containerPort": port,
                                      "protocol": "TCP"}]
            stateful = role_of(deployment) in ("all", "route", "merge")
            if values and stateful:
                assert context.params["state_dir"] == Path("/var/lib/syncline")
                mounts = {m["name"]: m["mountPath"] for m in spec["volumeMounts"]}
                assert mounts["state"] == "/var/lib/syncline"
            else:
                assert context.params["state_dir"] is None


async def test_the_probes_reach_the_daemons_health_and_readiness(helm: str) -> None:
    deployment = of_kind(render(helm), "Deployment")["sync-syncline"]
    spec = container(deployment)
    probes = {kind: spec[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness",
                                                                  "readiness")}
    for probe in probes.values():
        assert probe["port"] == "http"  # the named container port, i.e. --listen's
    waiting = ["lane crm/contact"]
    async with WebServer(port=0, ready=lambda: waiting) as server, httpx.AsyncClient(
            base_url=server.url) as client:
        # While a lane has not polled: alive, not ready (no webhooks routed to it yet).
        assert (await client.get(probes["startup"]["path"])).status_code == 200
        assert (await client.get(probes["liveness"]["path"])).status_code == 200
        not_ready = await client.get(probes["readiness"]["path"])
        assert not_ready.status_code == 503
        assert not_ready.json()["waiting_for"] == ["lane crm/contact"]
        waiting.clear()
        assert (await client.get(probes["readiness"]["path"])).status_code == 200


def test_the_service_monitor_scrapes_metrics_from_every_deployment(helm: str) -> None:
    docs = render(helm, PER_ROLE)
    monitors = of_kind(docs, "ServiceMonitor")
    assert list(monitors) == ["sync-syncline"]
    monitor = monitors["sync-syncline"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    services = [s for s in of_kind(docs, "Service").values()
                if wanted <= s["metadata"]["labels"].items()]
    pods = [d["spec"]["template"]["metadata"]["labels"]
            for d in of_kind(docs, "Deployment").values()]
    # Every pod is behind a selected Service whose port `http` is the pod's.
    for labels in pods:
        behind = [s for s in services if s["spec"]["selector"].items() <= labels.items()]
        assert len(behind) == 1
        assert behind[0]["spec"]["ports"][0]["name"] == "http"
        assert behind[0]["spec"]["ports"][0]["targetPort"] == "http"
    assert "ServiceMonitor" not in {doc["kind"] for doc in render(helm)}


def test_a_disruption_budget_lets_one_pod_of_each_deployment_go_at_a_time(helm: str) -> None:
    docs = render(helm, PER_ROLE)
    budgets = of_kind(docs, "PodDisruptionBudget")
    deployments = of_kind(docs, "Deployment")
    assert sorted(budgets) == sorted(deployments)
    for name, budget in budgets.items():
        assert budget["spec"]["maxUnavailable"] == 1
        assert budget["spec"]["selector"] == deployments[name]["spec"]["selector"]


# -- the config and its secrets ---------------------------------------------------------------


def load_as_a_pod_would(docs: list[dict[str, Any]], deployment: dict[str, Any],
                        secret_data: dict[str, str], root: Path) -> Config:
    """Lay out the ConfigMap and Secret as the pod's mounts would, and load the config
    from there with the environment the pod gets."""
    spec = container(deployment)
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
    config_volume = volumes[mounts["/etc/syncline"]]
    config_map = of_kind(docs, "ConfigMap")[config_volume["configMap"]["name"]]
    config_file = root / "etc" / "syncline" / "syncline.yaml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(config_map["data"]["syncline.yaml"], encoding="utf-8")
    secret_volume = volumes[mounts[str(SECRETS_DIR)]]["secret"]
    assert secret_volume["defaultMode"] == 0o440
    secrets_dir = root / "run" / "secrets" / "syncline"
    secrets_dir.mkdir(parents=True)
    for item in secret_volume["items"]:
        (secrets_dir / item["path"]).write_text(secret_data[item["key"]] + "\n",
                                                encoding="utf-8")
    env = {}
    for variable in spec["env"]:
        assert "value" in variable and not variable.get("valueFrom"), variable
        # No secret is ever a plain variable: only _FILE paths to the mounted files.
        assert variable["name"].endswith("_FILE"), variable
        path = PurePosixPath(variable["value"])
        assert path.parent == SECRETS_DIR
        env[variable["name"]] = str(secrets_dir / path.name)
    return load_config(config_file, env)


def test_the_config_map_loads_with_secrets_read_from_the_secrets_files(
        helm: str, tmp_path: Path) -> None:
    docs = render(helm, PER_ROLE)
    secret = of_kind(docs, "Secret")["sync-syncline-secrets"]
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert data["CRM_TOKEN"] == "crm-token-for-tests"
    for index, deployment in enumerate(of_kind(docs, "Deployment").values()):
        config = load_as_a_pod_would(docs, deployment, data, tmp_path / str(index))
        crm = config.systems["crm"]
        assert crm.auth is not None
        assert crm.auth.secret_value.get_secret_value() == "crm-token-for-tests"
        assert config.review is not None
        assert config.review.token.get_secret_value() == "review-token-for-tests"
        assert config.kafka.topics.partitions == 4


def test_by_default_the_pods_read_an_existing_secret_by_the_keys_listed(
        helm: str, tmp_path: Path) -> None:
    docs = render(helm)
    assert "Secret" not in {doc["kind"] for doc in docs}  # the operator's own Secret
    deployment = of_kind(docs, "Deployment")["sync-syncline"]
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "secrets")
    assert volume["secret"]["secretName"] == "syncline"
    keys = [item["key"] for item in volume["secret"]["items"]]
    assert keys == ["CRM_TOKEN", "CRM_WEBHOOK_SECRET", "HELPDESK_API_KEY",
                    "SYNCLINE_REVIEW_TOKEN"]
    config = load_as_a_pod_would(docs, deployment, {k: f"value of {k}" for k in keys},
                                 tmp_path)
    assert config.systems["helpdesk"].auth.secret_value.get_secret_value() == (
        "value of HELPDESK_API_KEY")


def test_the_default_config_is_the_example_with_in_cluster_addresses() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    config = yaml.safe_load(values["config"])
    example = yaml.safe_load((REPO / "examples" / "syncline.yaml").read_text(encoding="utf-8"))
    assert config["entities"] == example["entities"]
    assert list(config["systems"]) == list(example["systems"])
    for name, system in config["systems"].items():
        assert {k: v for k, v in system.items() if k != "base_url"} == {
            k: v for k, v in example["systems"][name].items() if k != "base_url"}
        assert "127.0.0.1" not in system["base_url"]
    assert "127.0.0.1" not in config["kafka"]["bootstrap"]


def test_a_config_naming_a_secret_no_key_provides_is_refused_naming_it(helm: str) -> None:
    error = refused(helm, sets=("secrets.keys={CRM_TOKEN,CRM_WEBHOOK_SECRET,HELPDESK_API_KEY}",))
    assert "SYNCLINE_REVIEW_TOKEN" in error
    assert "secrets.keys" in error
    # An env entry that provides it (here from another Secret) is enough.
    render(helm, sets=("secrets.keys={CRM_TOKEN,CRM_WEBHOOK_SECRET,HELPDESK_API_KEY}",
                       "env[0].name=SYNCLINE_REVIEW_TOKEN",
                       "env[0].valueFrom.secretKeyRef.name=review",
                       "env[0].valueFrom.secretKeyRef.key=token"))


def test_the_config_file_is_mounted_as_it_is_with_the_order_of_its_systems(
        helm: str, tmp_path: Path) -> None:
    # The order of `systems` is the tie-break order of the `latest` policy: the file goes
    # into the ConfigMap byte for byte, never through a YAML map that sorts its keys.
    text = (REPO / "examples" / "syncline.yaml").read_text(encoding="utf-8")
    crm = text[text.index("  crm:\n"):text.index("  helpdesk:\n")]
    helpdesk = text[text.index("  helpdesk:\n"):text.index("\n# The entities")] + "\n"
    reordered = text.replace(crm + helpdesk, helpdesk + crm)
    assert reordered != text
    given = tmp_path / "syncline.yaml"
    given.write_text(reordered, encoding="utf-8")
    done = helm_run(helm, "template", "sync", str(CHART), "--set-file", f"config={given}")
    assert done.returncode == 0, done.stderr
    docs = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    mounted = of_kind(docs, "ConfigMap")["sync-syncline-config"]["data"]["syncline.yaml"]
    assert mounted == reordered
    deployment = of_kind(docs, "Deployment")["sync-syncline"]
    config = load_as_a_pod_would(docs, deployment, {k: "s" for k in (
        "CRM_TOKEN", "CRM_WEBHOOK_SECRET", "HELPDESK_API_KEY", "SYNCLINE_REVIEW_TOKEN")},
        tmp_path / "pod")
    assert list(config.systems) == ["helpdesk", "crm"]


def test_a_changed_config_rolls_the_pods(helm: str, tmp_path: Path) -> None:
    def checksum(*values: Path) -> str:
        deployment = of_kind(render(helm, *values), "Deployment")["sync-syncline"]
        value: str = deployment["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"]
        return value

    assert checksum() == checksum()
    assert checksum() != checksum(config_values(tmp_path, "kafka:9092", "kafka-2:9092"))


def _env_fields(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[str]:
    """Every field of the config's models that names an environment variable."""
    if model in seen:
        return
    seen.add(model)
    for name, field in model.model_fields.items():
        if any(meta in typing.get_args(EnvName)[1:] for meta in field.metadata) or (
                EnvName in typing.get_args(field.annotation)):
            yield f"{model.__name__}.{name}"
        stack = [field.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from _env_fields(annotation, seen)
            stack.extend(typing.get_args(annotation))


def test_the_loader_names_secrets_only_by_keys_ending_in_env() -> None:
    # The chart finds the secrets a config needs by the keys ending in `_env`.
    fields = list(_env_fields(Config, set()))
    assert len(fields) >= 8, fields  # token, key, password, client secret, webhook, review ...
    assert all(field.endswith("_env") for field in fields), fields


# -- security ---------------------------------------------------------------------------------


def test_the_pods_run_unprivileged_on_a_read_only_root(helm: str) -> None:
    docs = render(helm, PER_ROLE)
    for deployment in of_kind(docs, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        spec = container(deployment)
        context = spec["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        writable = {m["mountPath"] for m in spec["volumeMounts"]
                    if not m.get("readOnly") and "emptyDir" in volumes[m["name"]]}
        assert "/tmp" in writable
        assert {m["mountPath"] for m in spec["volumeMounts"] if m.get("readOnly")} == {
            "/etc/syncline", str(SECRETS_DIR)}
        requests = spec["resources"]["requests"]
        assert requests["cpu"] and requests["memory"] and spec["resources"]["limits"]["memory"]


@pytest.mark.parametrize("config,says", [
    ("kafka: [unclosed", "config is not valid YAML"),
    ("systems: {}\n", "needs a kafka: section"),
])
def test_a_broken_config_is_refused_at_render_naming_the_problem(
        helm: str, tmp_path: Path, config: str, says: str) -> None:
    given = tmp_path / "syncline.yaml"
    given.write_text(config, encoding="utf-8")
    done = helm_run(helm, "template", "sync", str(CHART), "--set-file", f"config={given}")
    assert done.returncode != 0
    assert says in done.stderr


def test_tools_sh_without_go_says_what_to_install(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "cat", "mkdir"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    done = subprocess.run(
        [str(TOOLS_SH), "install"], capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": str(bin_dir), "SYNCLINE_TOOLS_DIR": str(tmp_path / "tools")})
    assert done.returncode == 2, done.stderr
    assert "go (1.24 or newer) is needed to build helm" in done.stderr


@pytest.mark.parametrize("values", [(), (PER_ROLE,)])
def test_helm_test_runs_syncline_status_against_the_pods_running_the_lanes(
        helm: str, values: tuple[Path, ...]) -> None:
    docs = render(helm, *values)
    pods = of_kind(docs, "Pod")
    assert list(pods) == ["sync-syncline-status"]
    pod = pods["sync-syncline-status"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]["containers"][0]
    assert spec["command"] == ["syncline"] and spec["args"][0] == "status"
    context = status.make_context("status", list(spec["args"][1:]))
    url = httpx.URL(context.params["url"])
    service = of_kind(docs, "Service")[url.host]
    assert service["spec"]["ports"][0]["port"] == url.port
    deployments = [d for d in of_kind(docs, "Deployment").values()
                   if service["spec"]["selector"].items()
                   <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert [role_of(d) for d in deployments] in (["all"], ["lanes"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
