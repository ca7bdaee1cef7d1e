"""deploy/kubernetes, without a cluster: every manifest valid against the Kubernetes 1.37 API schema
(kubernetes-validate's offline copy; KEDA's CRDs by a structural check of our own), every command a
valid `balcao` invocation, every variable the services need set, the generated files (queue names
from the event catalogue) up to date, non-root/read-only pods, resources from the bench's figures."""
from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy import kubernetes_manifests as generator
from services.common.config import SERVICES
from services.common.gateway import PREFIXES

from . import _env
from ._util import ROOT, balcao

KUBE = ROOT / "deploy/kubernetes"
KUBERNETES_VERSION = "1.37"
IMAGE = "balcao:latest"  # the name kustomization.yaml's `images:` rewrites to the operator's
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}


def load_kustomization(directory: Path) -> list[dict]:
    """The objects `kubectl apply -k directory` creates (resources, sub-kustomizations and
    configMapGenerator, the namespace set), read without kustomize."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        assert path.exists(), f"{directory / 'kustomization.yaml'}: {entry} does not exist"
        if path.is_dir():
            docs += load_kustomization(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for generated in kustomization.get("configMapGenerator", []):
        data = {}
        for item in generated["files"]:
            key, _, name = item.partition("=") if "=" in item else (Path(item).name, "", item)
            data[key] = (directory / name).read_text()
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generated["name"]}, "data": data})
    if kustomization.get("namespace"):
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    return load_kustomization(KUBE)


@pytest.fixture(scope="module")
def secrets() -> dict[str, dict]:
    """The Secrets the manifests expect, as secrets.example.yaml describes them."""
    docs = [d for d in yaml.safe_load_all((KUBE / "secrets.example.yaml").read_text()) if d]
    return {d["metadata"]["name"]: d for d in docs}


def by_kind(manifests, kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in manifests if d["kind"] == kind}


def pod_specs(manifests):
    for doc in manifests:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def balcao_containers(manifests):
    for doc, spec in pod_specs(manifests):
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["image"] == IMAGE:
                yield doc, spec, container


# --------------------------------------------------------------------------- the API schema

def _schema_errors(doc: dict) -> str | None:
    import kubernetes_validate
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc)
    return None


def test_every_manifest_is_valid_against_the_kubernetes_schema_offline(manifests):
    """strict: an unknown field (a typo) is an error too. kubernetes-validate ships the schemas of
    every Kubernetes version up to 1.37 in the package: no network, no cluster."""
    import kubernetes_validate
    unchecked = set()
    for doc in manifests:
        try:
            error = _schema_errors(doc)
        except kubernetes_validate.SchemaNotFoundError:
            unchecked.add(doc["kind"])
            continue
        assert error is None, f"{doc['kind']} {doc['metadata']['name']}: {error}"
    # only KEDA's custom resources have no schema there (checked by test_keda_objects_are_well_formed)
    assert unchecked == KEDA_KINDS


def test_secrets_example_is_valid_too(secrets):
    for name, doc in secrets.items():
        assert _schema_errors(doc) is None, name


def test_the_schema_check_catches_invalid_manifests(manifests):
    """Control for the test above: a misspelt field and a wrong type are rejected."""
    web = copy.deepcopy(by_kind(manifests, "Deployment")["balcao-users-web"])
    web["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = web["spec"]["template"]["spec"][
        "containers"][0].pop("readinessProbe")
    assert "readinesProbe" in (_schema_errors(web) or "")
    hpa = copy.deepcopy(by_kind(manifests, "HorizontalPodAutoscaler")["balcao-users-web"])
    hpa["spec"]["minReplicas"] = "two"
    assert _schema_errors(hpa) is not None


def test_kubectl_kustomize_renders_the_same_objects(manifests):
    """`kubectl kustomize` (offline) builds the same set of objects as load_kustomization, and
    rewrites the gateway's reference to its generated (hash-suffixed) ConfigMap."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the objects are still read by load_kustomization above")
    result = subprocess.run([kubectl, "kustomize", str(KUBE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    template = next(d["metadata"]["name"] for d in rendered if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"].startswith("balcao-gateway-template-"))
    names = {(d["kind"], d["metadata"]["name"].replace(template, "balcao-gateway-template")) for d in rendered}
    assert names == {(d["kind"], d["metadata"]["name"]) for d in manifests}
    gateway = next(d for d in rendered if d["kind"] == "Deployment" and d["metadata"]["name"] == "balcao-gateway")
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    assert volumes["template"]["configMap"]["name"] == template
    assert all(d["metadata"].get("namespace") == "balcao" for d in rendered if d["kind"] != "Namespace")


# --------------------------------------------------------------------------- KEDA (no schema offline)

KEDA_TRIGGER_METADATA = {"host", "protocol", "mode", "value", "activationValue", "queueName", "vhostName",
                         "useRegex", "operation", "excludeUnacknowledged", "unsafeSsl", "timeout"}


def test_keda_objects_are_well_formed(manifests, secrets):
    """KEDA's CRDs are not in kubernetes-validate: a structural check of the fields we use, against
    KEDA's documented ScaledObject / TriggerAuthentication (keda.sh/v1alpha1) and rabbitmq scaler."""
    deployments = by_kind(manifests, "Deployment")
    auths = by_kind(manifests, "TriggerAuthentication")
    scaled = by_kind(manifests, "ScaledObject")
    for doc in [*auths.values(), *scaled.values()]:
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    for name, auth in auths.items():
        assert set(auth["spec"]) == {"secretTargetRef"}, name
        for ref in auth["spec"]["secretTargetRef"]:
            assert set(ref) == {"parameter", "name", "key"}
            assert ref["parameter"] == "host"
            assert ref["key"] in secrets[ref["name"]]["stringData"]  # a Secret the operator creates
    assert set(scaled) == {f"balcao-{svc}-worker" for svc in SERVICES}
    for name, obj in scaled.items():
        spec = obj["spec"]
        assert set(spec) <= {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
                             "cooldownPeriod", "triggers", "advanced", "fallback", "idleReplicaCount"}, name
        target = deployments[spec["scaleTargetRef"]["name"]]
        assert target["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
        # never scaled to zero: the worker also runs the outbox relay and the periodic jobs
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
        assert isinstance(spec["pollingInterval"], int) and isinstance(spec["cooldownPeriod"], int)
        assert spec["triggers"], name
        for trigger in spec["triggers"]:
            assert trigger["type"] == "rabbitmq"
            assert set(trigger["metadata"]) <= KEDA_TRIGGER_METADATA
            assert all(isinstance(v, str) for v in trigger["metadata"].values())  # KEDA's metadata is strings
            assert trigger["metadata"]["mode"] in ("QueueLength", "MessageRate")
            assert trigger["metadata"]["protocol"] == "amqp"
            assert int(trigger["metadata"]["value"]) > 0
            assert "host" not in trigger["metadata"]  # credentials only through the TriggerAuthentication
            assert trigger["authenticationRef"]["name"] in auths


def test_each_worker_scales_on_exactly_its_own_queues(manifests):
    """The queues of each ScaledObject are the queues `balcao worker <svc>` consumes, as messaging
    declares them from the event catalogue."""
    from services.common.messaging import service_queues
    scaled = by_kind(manifests, "ScaledObject")
    for svc in SERVICES:
        queues = [t["metadata"]["queueName"] for t in scaled[f"balcao-{svc}-worker"]["spec"]["triggers"]]
        assert queues == [q.name for q in service_queues(svc)], svc


# --------------------------------------------------------------------------- generated files

def test_generated_manifests_are_up_to_date():
    stale = [str(p.relative_to(ROOT)) for p in generator.stale_files()]
    assert not stale, f"out of date: {stale}; run `.venv/bin/python -m deploy.kubernetes_manifests` and commit"


def test_a_new_event_type_makes_the_scaled_objects_stale(monkeypatch):
    """Control for the test above: a queue added to the catalogue is noticed (names are generated)."""
    from services.common import events
    spec = events.CATALOGUE["firm.profile_changed"]
    monkeypatch.setitem(events.CATALOGUE, "firm.renamed_for_test",
                        spec._replace(consumers=("notifier",), producers=("users",)))
    assert generator.KUBE_DIR / "keda" / "scaledobjects.yaml" in generator.stale_files()
    assert "notifier.firm.renamed_for_test" in generator.scaled_objects_file()


def test_the_generator_check_command_reports_stale_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(generator, "KUBE_DIR", tmp_path)
    assert generator.main(["--check"]) == 1
    assert "run `python -m deploy.kubernetes_manifests`" in capsys.readouterr().err
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


# --------------------------------------------------------------------------- commands

def _parses(argv: list[str]) -> int:
    """Exit status of the real `balcao` parser on argv + --help (no command runs)."""
    import balcao_cli
    try:
        balcao_cli.main([*argv, "--help"])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_every_command_is_a_valid_balcao_invocation(manifests, capsys):
    commands = {tuple(c["command"]) for _doc, _spec, c in balcao_containers(manifests)}
    assert len(commands) >= 3 * len(SERVICES) + 2  # web, worker, wait-migrated per service; the jobs
    for command in commands:
        assert command[0] == "balcao", command
        assert _parses(list(command[1:])) == 0, f"{command}: {capsys.readouterr().err}"


def test_the_command_check_catches_an_invalid_invocation(capsys):
    """Control for the test above: the parser rejects a wrong service and a wrong option value."""
    assert _parses(["worker", "billing"]) != 0
    assert _parses(["web", "users", "--workers", "two"]) != 0
    assert _parses(["wait-migrated", "users", "--timeout", "soon"]) != 0


def test_each_service_runs_its_own_web_and_worker(manifests):
    deployments = by_kind(manifests, "Deployment")
    for svc in SERVICES:
        web = deployments[f"balcao-{svc}-web"]["spec"]["template"]["spec"]
        worker = deployments[f"balcao-{svc}-worker"]["spec"]["template"]["spec"]
        assert web["containers"][0]["command"][:3] == ["balcao", "web", svc]
        assert "0.0.0.0:8000" in web["containers"][0]["command"]
        assert worker["containers"][0]["command"] == ["balcao", "worker", svc]
        for pod in (web, worker):  # each waits for its own schema
            assert [c["command"][:3] for c in pod["initContainers"]] == [["balcao", "wait-migrated", svc]]
    jobs = by_kind(manifests, "Job")
    assert jobs["balcao-migrate"]["spec"]["template"]["spec"]["containers"][0]["command"] == ["balcao", "migrate"]
    assert jobs["balcao-documents-bucket"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "balcao", "documents-bucket"]


def test_wait_migrated_waits_for_the_migrate_job(tmp_path):
    """The initContainer's command: exit 1 (naming what to run) while the database lacks this code's
    migrations, 0 once `balcao migrate` has run."""
    env = {"BALCAO_VAR_DIR": str(tmp_path), "BALCAO_USERS_DATABASE_URL": f"sqlite:///{tmp_path}/users.sqlite3"}
    before = balcao("wait-migrated", "users", "--timeout", "0", env=env)
    assert before.returncode == 1
    assert "balcao migrate" in before.stderr and "no revision" in before.stderr
    assert balcao("migrate", "--service", "users", env=env).returncode == 0
    after = balcao("wait-migrated", "users", "--timeout", "0", env=env)
    assert after.returncode == 0, after.stderr


# --------------------------------------------------------------------------- environment

def _container_env(container: dict, manifests, secrets) -> set[str]:
    names = set(_env.image_env())
    config_maps = by_kind(manifests, "ConfigMap")
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(config_maps[source["configMapRef"]["name"]]["data"])
        else:
            names |= set(secrets[source["secretRef"]["name"]]["stringData"])
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:  # the key exists in the Secret the operator is told to create
            assert ref["key"] in secrets[ref["name"]]["stringData"], item
        names.add(item["name"])
    return names


def test_no_variable_is_read_without_a_decision_about_deployments():
    """A variable read without a default (in the config loader or anywhere in services/) must be
    set by docker-compose.yml and deploy/kubernetes, or be shown to be optional: tests/deploy/_env.py."""
    assert _env.unclassified() == set()
    read = set(_env.variables_read())
    listed = set(_env.DISTRIBUTED_REQUIRED) | set(_env.KEYS_FILE_FALLBACK) | _env.OPTIONAL_UNSET | set(_env.FALLS_BACK_ON)
    assert listed <= read, f"listed but no longer read: {listed - read}"


def test_every_web_and_worker_gets_what_it_needs_and_only_its_own_database(manifests, secrets):
    seen = set()
    for doc, _spec, container in balcao_containers(manifests):
        command = container["command"]
        if command[1] not in ("web", "worker", "wait-migrated"):
            continue
        svc = command[2]
        role = "web" if command[1] == "web" else "worker"
        env = _container_env(container, manifests, secrets)
        missing = _env.required_for(svc, role) - env
        assert not missing, f"{doc['metadata']['name']} {container['name']}: {sorted(missing)} not set"
        databases = {n for n in env if n.endswith("_DATABASE_URL")}
        assert databases == {f"BALCAO_{svc.upper()}_DATABASE_URL"}, doc["metadata"]["name"]
        seen.add((svc, command[1]))
    assert {(s, r) for s in SERVICES for r in ("web", "worker")} <= seen


def test_each_worker_may_be_given_its_own_direct_listen_url(manifests, secrets):
    """Behind PgBouncer the outbox relay (in the worker) LISTENs on PostgreSQL directly: each
    worker takes its own service's BALCAO_<SVC>_DATABASE_LISTEN_URL from the Secret, optionally
    (absent, the relay uses the database URL); no web runs a relay, none is given one."""
    workers = set()
    for doc, _spec, container in balcao_containers(manifests):
        command = container["command"]
        listen = [item for item in container.get("env", []) if item["name"].endswith("_DATABASE_LISTEN_URL")]
        if command[1] == "worker":
            svc = command[2]
            [item] = listen
            assert item["name"] == f"BALCAO_{svc.upper()}_DATABASE_LISTEN_URL", doc["metadata"]["name"]
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["optional"] is True and ref["key"] in secrets[ref["name"]]["stringData"]
            assert _env.FALLS_BACK_ON[item["name"]][0] == f"BALCAO_{svc.upper()}_DATABASE_URL"
            workers.add(svc)
        else:
            assert listen == [], doc["metadata"]["name"]
    assert workers == set(SERVICES)


def test_the_migrate_job_has_every_database(manifests, secrets):
    job = by_kind(manifests, "Job")["balcao-migrate"]["spec"]["template"]["spec"]["containers"][0]
    env = _container_env(job, manifests, secrets)
    assert {f"BALCAO_{s.upper()}_DATABASE_URL" for s in SERVICES} <= env


def test_the_keys_secret_holds_what_the_variables_fall_back_on(tmp_path, manifests):
    """BALCAO_SECRET_KEY, BALCAO_PII_KEY, BALCAO_DOCUMENTS_KEY are not set: every pod reads them
    from files of `balcao keys` (the Secret balcao-keys, mounted read-only as BALCAO_KEYS_DIR), so
    `balcao keys` must make each file."""
    made = _env.keys_dir_files(tmp_path)
    assert set(_env.KEYS_FILE_FALLBACK.values()) <= made
    assert {f"{s}.{kind}.pem" for s in SERVICES for kind in ("ed25519", "x25519")} <= made
    keys_dir = by_kind(manifests, "ConfigMap")["balcao-config"]["data"]["BALCAO_KEYS_DIR"]
    for doc, spec, container in balcao_containers(manifests):
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volume = next(v for v in spec["volumes"] if v["name"] == mounts[keys_dir]["name"])
        assert volume["secret"]["secretName"] == "balcao-keys" and mounts[keys_dir]["readOnly"], doc["metadata"]["name"]


def test_secrets_example_holds_placeholders_only_and_is_never_applied(secrets):
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    assert "secrets.example.yaml" not in kustomization["resources"]
    assert not any(d["kind"] == "Secret" for d in load_kustomization(KUBE))
    for name, doc in secrets.items():
        for key, value in doc["stringData"].items():
            # a URL's password, an access key, a key file: always a <PLACEHOLDER>
            password = re.search(r"://[^:/@]*:([^@]*)@", value)
            if password:
                assert re.fullmatch(r"<[A-Z_]+>", password.group(1)), f"{name} {key}"
            elif "://" not in value:
                assert re.fullmatch(r"<[^<>]+>", value), f"{name} {key}"
    text = (KUBE / "secrets.example.yaml").read_text()
    assert "DATABASE_LISTEN_URL" in text  # the place PgBouncer's direct LISTEN URL goes (issue 12)


# --------------------------------------------------------------------------- pods

def test_every_pod_is_non_root_read_only_and_unprivileged(manifests):
    for doc, spec in pod_specs(manifests):
        name = doc["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        mounted = {v["name"] for v in spec["volumes"]}
        for container in spec.get("initContainers", []) + spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in ctx["capabilities"], name
            assert {"requests", "limits"} <= set(container["resources"]), name
            for kind in ("cpu", "memory"):
                assert kind in container["resources"]["requests"] and kind in container["resources"]["limits"]
            paths = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in paths, f"{name}: a read-only root needs a writable /tmp"
            assert {m["name"] for m in container["volumeMounts"]} <= mounted


def test_webs_are_probed_on_their_own_readyz_and_healthz(manifests):
    deployments = by_kind(manifests, "Deployment")
    for svc in SERVICES:
        web = deployments[f"balcao-{svc}-web"]["spec"]["template"]["spec"]["containers"][0]
        assert web["readinessProbe"]["httpGet"]["path"] == f"{PREFIXES[svc]}/readyz"
        assert web["livenessProbe"]["httpGet"]["path"] == f"{PREFIXES[svc]}/healthz"


def test_hpa_per_web_and_disruption_budget_per_deployment(manifests):
    deployments = by_kind(manifests, "Deployment")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(manifests, "HorizontalPodAutoscaler").values()}
    webs = {n for n, d in deployments.items() if d["metadata"]["labels"]["app.kubernetes.io/component"] in
            ("web", "gateway")}
    assert set(hpas) == webs
    for hpa in hpas.values():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        assert hpa["spec"]["minReplicas"] >= 2
    for name, deployment in deployments.items():
        # replicas belong to the autoscaler (HPA or KEDA): a fixed value would be reset by every apply
        assert "replicas" not in deployment["spec"], name
        selector = deployment["spec"]["selector"]["matchLabels"]
        budgets = [p for p in by_kind(manifests, "PodDisruptionBudget").values()
                   if p["spec"]["selector"]["matchLabels"] == selector]
        assert len(budgets) == 1, name


def _bench_rss() -> dict[str, dict[str, float]]:
    """The per-process RSS figures of bench/README.md's Memory table."""
    text = (ROOT / "bench/README.md").read_text()
    found: dict[str, dict[str, float]] = {}
    for svc, what, value in re.findall(
            r"^\| (\w+): (gunicorn worker|gunicorn master|worker \(consumers \+ relay\)) RSS MB[^|]*\|\s*([\d.]+)",
            text, flags=re.M):
        key = {"gunicorn worker": "worker", "gunicorn master": "master"}.get(what, "consumer")
        found.setdefault(svc, {})[key] = float(value)
    return found


def test_memory_requests_cover_the_bench_figures(manifests):
    bench = _bench_rss()
    assert set(bench) == generator.MEASURED  # documents: not in the table yet (see the generator)
    for svc in generator.MEASURED:
        assert generator.BENCH_RSS_MB[svc] == bench[svc], f"{svc}: copy bench/README.md's figures"
    deployments = by_kind(manifests, "Deployment")

    def mi(quantity: str) -> int:
        assert quantity.endswith("Mi"), quantity
        return int(quantity[:-2])

    for svc in SERVICES:
        rss = generator.BENCH_RSS_MB[svc]
        web = deployments[f"balcao-{svc}-web"]["spec"]["template"]["spec"]["containers"][0]
        workers = int(web["command"][web["command"].index("--workers") + 1])
        need = rss["master"] + workers * rss["worker"]
        assert need <= mi(web["resources"]["requests"]["memory"]) < mi(web["resources"]["limits"]["memory"])
        worker = deployments[f"balcao-{svc}-worker"]["spec"]["template"]["spec"]["containers"][0]
        assert rss["consumer"] <= mi(worker["resources"]["requests"]["memory"]) < mi(
            worker["resources"]["limits"]["memory"])


# --------------------------------------------------------------------------- gateway

def test_gateway_renders_the_same_template_with_the_webs_as_upstreams(manifests):
    gateway = by_kind(manifests, "Deployment")["balcao-gateway"]["spec"]["template"]["spec"]
    container = gateway["containers"][0]
    template_cm = by_kind(manifests, "ConfigMap")["balcao-gateway-template"]
    template = (ROOT / "deploy/gateway/balcao.conf.template").read_text()
    assert template_cm["data"] == {"default.conf.template": template}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["template"] == "/etc/nginx/templates"
    substituted = set(re.findall(r"\$\{([A-Z_]+)\}", template))
    env = {e["name"]: e["value"] for e in container["env"]}
    assert set(env) == substituted
    services = by_kind(manifests, "Service")
    for svc in SERVICES:
        host, port = env[f"{svc.upper()}_UPSTREAM"].split(":")
        assert [p["port"] for p in services[host]["spec"]["ports"]] == [int(port)]
        assert services[host]["spec"]["selector"]["balcao.service"] == svc
    assert int(env["GATEWAY_PORT"]) == container["ports"][0]["containerPort"]
    # nginx writes its rendered config, pid and temp files: all on emptyDirs, the root read-only
    assert {"/etc/nginx/conf.d", "/tmp"} <= set(mounts.values())


def test_only_the_gateway_reaches_the_webs(manifests):
    policy = by_kind(manifests, "NetworkPolicy")["balcao-web"]["spec"]
    http = next(rule for rule in policy["ingress"] if rule["ports"] == [{"port": 8000}])
    assert http["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "balcao",
                                                             "app.kubernetes.io/component": "gateway"}}}]
    assert by_kind(manifests, "ConfigMap")["balcao-config"]["data"]["BALCAO_FORWARDED_ALLOW_IPS"] == "*"
