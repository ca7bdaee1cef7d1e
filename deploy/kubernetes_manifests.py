"""Writes the generated part of deploy/kubernetes/: each service's web and worker (Deployments,
Service, HorizontalPodAutoscaler, PodDisruptionBudgets) and the workers' KEDA ScaledObjects,
whose queue names come from the event catalogue (services/common/messaging.service_queues), never
typed by hand.

    .venv/bin/python -m deploy.kubernetes_manifests          # rewrite the files
    .venv/bin/python -m deploy.kubernetes_manifests --check  # exit 1 if they are out of date

tests/deploy/test_kubernetes.py fails, naming the first command, when a committed file differs
from what this module writes (e.g. after an event type was added to the catalogue). The rest of
deploy/kubernetes/ (gateway, jobs, ConfigMap, secrets, network policies) is written by hand.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from services.common.config import SERVICES
from services.common.gateway import PREFIXES

KUBE_DIR = Path(__file__).resolve().parent / "kubernetes"
COMMAND = "python -m deploy.kubernetes_manifests"
IMAGE = "balcao:latest"  # kustomization.yaml `images:` sets the operator's registry and tag
WEB_PORT = 8000
METRICS_PORT = 9464
GUNICORN_WORKERS = 2  # as docker-compose.yml: a web pod is one gunicorn master + 2 workers (gthread, 4 threads)
UID = 10001  # deploy/Dockerfile's user "balcao"

# Memory, from bench/README.md "Memory" (the issue 9 run of `make bench`: VmRSS of each process after
# the run, distributed mode). Per service: gunicorn master, one gunicorn worker, the `balcao worker`.
# documents has no row in that table: its gunicorn worker is the documents_download figure (121-122 MB
# while serving three 50 MB downloads); its master and `balcao worker` were not measured and are
# taken as the users service's (the same imports plus boto3/pypdf), to be replaced by a measurement.
BENCH_RSS_MB = {
    "auth": {"master": 52.7, "worker": 140.3, "consumer": 82.9},
    "users": {"master": 49.6, "worker": 87.6, "consumer": 85.1},
    "invitations": {"master": 49.5, "worker": 76.2, "consumer": 74.6},
    "notifier": {"master": 49.3, "worker": 76.6, "consumer": 78.8},
    "documents": {"master": 49.6, "worker": 122.1, "consumer": 85.1},
}
MEASURED = {"auth", "users", "invitations", "notifier"}

# CPU is not a bench figure (the bench measures rates on a shared 2-core host, not a pod's CPU):
# starting values, to be tuned from the pods' own usage. auth verifies argon2id passwords (CPU-bound).
WEB_CPU = {"auth": ("500m", "2"), "users": ("250m", "1"), "invitations": ("100m", "1"),
           "notifier": ("100m", "1"), "documents": ("250m", "2")}
WORKER_CPU = ("100m", "500m")
HPA_CPU_PERCENT = 70
WEB_MIN_REPLICAS, WEB_MAX_REPLICAS = 2, 10
WORKER_MIN_REPLICAS, WORKER_MAX_REPLICAS = 1, 10
# KEDA: one replica per this many ready messages in the busiest of the service's queues
QUEUE_LENGTH_PER_REPLICA = 100
# writable scratch space: gunicorn's heartbeat files, prometheus_client's multiprocess files and,
# for documents, uploads spooled by werkzeug (up to BALCAO_DOCUMENTS_MAX_MB each)
TMP_SIZE = {"documents": "1Gi"}
TMP_SIZE_DEFAULT = "64Mi"


def _round_up(mb: float, step: int = 32) -> int:
    return int(-(-mb // step) * step)


def memory(service: str, role: str) -> tuple[str, str, str]:
    """(request, limit, explanation) in Mi. request = the bench's RSS rounded up to 32 Mi;
    limit = 1.5 x the request (argon2id verifies hold 19 MiB per thread; uploads; growth)."""
    rss = BENCH_RSS_MB[service]
    if role == "web":
        total = rss["master"] + GUNICORN_WORKERS * rss["worker"]
        how = f"master {rss['master']} + {GUNICORN_WORKERS} x worker {rss['worker']} = {total:.1f} MB RSS"
    else:
        total = rss["consumer"]
        how = f"`balcao worker` {total} MB RSS"
    request = _round_up(total)
    limit = _round_up(request * 1.5)
    source = "bench/README.md, Memory" if service in MEASURED else "estimated (see deploy/kubernetes_manifests.py)"
    return f"{request}Mi", f"{limit}Mi", f"{how} ({source})"


def labels(service: str, role: str) -> dict:
    return {"app.kubernetes.io/name": "balcao", "app.kubernetes.io/component": role,
            "balcao.service": service}


def _security_context() -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}}


def pod_security_context() -> dict:
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _volumes(service: str) -> list[dict]:
    return [
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE.get(service, TMP_SIZE_DEFAULT)}},
        # BALCAO_VAR_DIR: nothing is kept there in this mode (databases, broker, S3 are external),
        # but load_config creates it
        {"name": "var", "emptyDir": {"sizeLimit": "16Mi"}},
        # `balcao keys` output (signing/sealing keys, documents master key, PII key), read-only
        {"name": "keys", "secret": {"secretName": "balcao-keys", "defaultMode": 0o440}},
    ]


def _mounts() -> list[dict]:
    return [{"name": "tmp", "mountPath": "/tmp"},
            {"name": "var", "mountPath": "/var/lib/balcao"},
            {"name": "keys", "mountPath": "/var/lib/balcao/keys", "readOnly": True}]


def env_from(service: str) -> list[dict]:
    sources = [{"configMapRef": {"name": "balcao-config"}}, {"secretRef": {"name": "balcao-secrets"}}]
    if service == "documents":
        sources.append({"secretRef": {"name": "balcao-s3"}})
    return sources


def database_env(service: str) -> dict:
    name = f"BALCAO_{service.upper()}_DATABASE_URL"
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "balcao-databases", "key": name}}}


def database_listen_env(service: str) -> dict:
    """The outbox relay's direct LISTEN connection (PgBouncer in transaction mode cannot carry a
    LISTEN): optional in the Secret — absent, the relay listens on the database URL."""
    name = f"BALCAO_{service.upper()}_DATABASE_LISTEN_URL"
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "balcao-databases", "key": name, "optional": True}}}


def _container(name: str, service: str, command: list[str], *, ports: list[dict], resources: dict,
               **probes) -> dict:
    """A container of the Balcão image: the ConfigMap and Secrets, its own database URL, the
    read-only root with its writable mounts."""
    return {
        "name": name,
        "image": IMAGE,
        "command": command,
        **({"ports": ports} if ports else {}),
        "envFrom": env_from(service),
        "env": [database_env(service), *([database_listen_env(service)] if name == "worker" else [])],
        **probes,
        "resources": resources,
        "securityContext": _security_context(),
        "volumeMounts": _mounts(),
    }


def _resources(cpu: tuple[str, str], memory: tuple[str, str]) -> dict:
    return {"requests": {"cpu": cpu[0], "memory": memory[0]}, "limits": {"cpu": cpu[1], "memory": memory[1]}}


def _wait_for_schema(service: str) -> dict:
    """initContainer: the pod starts once the balcao-migrate Job has brought this service's
    database to the image's Alembic head (`balcao wait-migrated` polls alembic_version)."""
    return _container("wait-migrated", service, ["balcao", "wait-migrated", service, "--timeout", "600"],
                      ports=[], resources=_resources(("50m", "500m"), ("96Mi", "160Mi")))


def _deployment(service: str, role: str, container: dict, *, grace: int, **spec) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"balcao-{service}-{role}", "labels": labels(service, role)},
        # no `replicas`: the autoscaler owns it (the web's HPA, the worker's KEDA ScaledObject; a
        # worker has 1 without KEDA): a value here would be reset at every apply
        "spec": {
            "selector": {"matchLabels": labels(service, role)},
            **spec,
            "template": {"metadata": {"labels": labels(service, role)},
                         "spec": {
                             "automountServiceAccountToken": False,
                             "enableServiceLinks": False,
                             "terminationGracePeriodSeconds": grace,
                             "securityContext": pod_security_context(),
                             "initContainers": [_wait_for_schema(service)],
                             "containers": [container],
                             "volumes": _volumes(service),
                         }},
        },
    }


def web_deployment(service: str) -> dict:
    request, limit, _ = memory(service, "web")
    prefix = PREFIXES[service]
    container = _container(
        "web", service,
        ["balcao", "web", service, "--bind", f"0.0.0.0:{WEB_PORT}", "--workers", str(GUNICORN_WORKERS)],
        ports=[{"name": "http", "containerPort": WEB_PORT}, {"name": "metrics", "containerPort": METRICS_PORT}],
        resources=_resources(WEB_CPU[service], (request, limit)),
        # 200 only when its database, the broker and the SMTP configuration answer
        readinessProbe={"httpGet": {"path": f"{prefix}/readyz", "port": "http"},
                        "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        # the process answers (never its dependencies: a broker outage must not restart every web)
        livenessProbe={"httpGet": {"path": f"{prefix}/healthz", "port": "http"},
                       "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3},
        startupProbe={"httpGet": {"path": f"{prefix}/healthz", "port": "http"},
                      "periodSeconds": 2, "failureThreshold": 60},
    )
    return _deployment(service, "web", container, grace=30,
                       strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})


def web_service(service: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"balcao-{service}-web", "labels": labels(service, "web")},
        # the gateway's upstream (AUTH_UPSTREAM=balcao-auth-web:8000 ...); metrics are scraped from the
        # pods' own port 9464, never through this Service
        "spec": {"selector": labels(service, "web"),
                 "ports": [{"name": "http", "port": WEB_PORT, "targetPort": "http"}]},
    }


def worker_deployment(service: str) -> dict:
    request, limit, _ = memory(service, "worker")
    container = _container("worker", service, ["balcao", "worker", service],
                           ports=[{"name": "metrics", "containerPort": METRICS_PORT}],
                           resources=_resources(WORKER_CPU, (request, limit)))
    # `balcao worker` stops its consumers and relay on SIGTERM (compose gives it 20 s)
    return _deployment(service, "worker", container, grace=30)


def web_hpa(service: str) -> dict:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": f"balcao-{service}-web", "labels": labels(service, "web")},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"balcao-{service}-web"},
            "minReplicas": WEB_MIN_REPLICAS, "maxReplicas": WEB_MAX_REPLICAS,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": HPA_CPU_PERCENT}}}],
        },
    }


def pdb(service: str, role: str) -> dict:
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": f"balcao-{service}-{role}", "labels": labels(service, role)},
        # maxUnavailable (not minAvailable): a drain never blocks, even at one replica
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(service, role)}},
    }


def queue_names(service: str) -> list[str]:
    """The queues `balcao worker <service>` consumes, as messaging declares them (the retry queues,
    which hold delayed messages, and the dead-letter queue, which nothing consumes, are left out)."""
    from services.common.messaging import service_queues
    return [q.name for q in service_queues(service)]


def scaled_object(service: str) -> dict:
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": f"balcao-{service}-worker", "labels": labels(service, "worker")},
        "spec": {
            "scaleTargetRef": {"name": f"balcao-{service}-worker"},
            # never 0: the worker also runs the service's outbox relay and periodic jobs
            "minReplicaCount": WORKER_MIN_REPLICAS,
            "maxReplicaCount": WORKER_MAX_REPLICAS,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {"type": "rabbitmq",
                 "metadata": {"protocol": "amqp", "mode": "QueueLength",
                              "value": str(QUEUE_LENGTH_PER_REPLICA), "queueName": name},
                 "authenticationRef": {"name": "balcao-rabbitmq"}}
                for name in queue_names(service)
            ],
        },
    }


def _dump(docs: list[tuple[str, dict]], header: str) -> str:
    parts = [header.rstrip() + "\n"]
    for comment, doc in docs:
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=120)
        lines = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines()) if comment else ""
        parts.append("---\n" + lines + text)
    return "".join(parts)


def _header(what: str) -> str:
    return (f"# GENERATED by `{COMMAND}` ({what}); do not edit by hand:\n"
            "# change deploy/kubernetes_manifests.py and run it again (tests/deploy/test_kubernetes.py\n"
            "# fails while this file and the generator disagree).\n")


def service_file(service: str) -> str:
    web_mem, worker_mem = memory(service, "web")[2], memory(service, "worker")[2]
    docs = [
        (f"{service} web: `balcao web {service}` (gunicorn, {GUNICORN_WORKERS} workers x 4 threads).\n"
         f"memory request = {web_mem} rounded up to 32 Mi; limit = 1.5 x request.\n"
         "CPU: starting values (not a bench figure); the HPA below scales on them.\n"
         "Volumes: /tmp and the var dir are emptyDirs (the root filesystem is read-only); the keys are the\n"
         "Secret balcao-keys, mode 288 (= 0440, readable by the pod's group 10001).",
         web_deployment(service)),
        ("", web_service(service)),
        (f"{service} worker: `balcao worker {service}` (consumers + outbox relay + periodic jobs).\n"
         f"memory request = {worker_mem} rounded up to 32 Mi; limit = 1.5 x request.\n"
         "Its outbox relay LISTENs on BALCAO_<SERVICE>_DATABASE_LISTEN_URL when the Secret has it (behind\n"
         "PgBouncer: PostgreSQL itself, not the pooler), else on the database URL.",
         worker_deployment(service)),
        (f"CPU autoscaling of the {service} web (the workers scale on queue depth: keda/scaledobjects.yaml)",
         web_hpa(service)),
        ("", pdb(service, "web")),
        ("", pdb(service, "worker")),
    ]
    return _dump(docs, _header(f"the {service} service"))


def scaled_objects_file() -> str:
    docs = [(f"{service} worker: one trigger per queue it consumes (the HPA KEDA makes scales on the busiest:\n"
             f"one replica per {QUEUE_LENGTH_PER_REPLICA} ready messages)", scaled_object(service))
            for service in SERVICES]
    return _dump(docs, _header("queue names from the event catalogue, services/common/events.py"))


def generated_files() -> dict[Path, str]:
    files = {KUBE_DIR / "services" / f"{svc}.yaml": service_file(svc) for svc in SERVICES}
    files[KUBE_DIR / "keda" / "scaledobjects.yaml"] = scaled_objects_file()
    return files


def stale_files() -> list[Path]:
    return [path for path, text in generated_files().items()
            if not path.exists() or path.read_text() != text]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"out of date: {path.relative_to(KUBE_DIR.parent.parent)} (run `{COMMAND}`)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(KUBE_DIR.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
