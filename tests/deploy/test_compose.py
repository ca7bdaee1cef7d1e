"""docker-compose.yml: valid for Compose, every Balcão container runs a real `balcao` command,
secrets only from .env, and the stack can be scaled (no fixed names or host ports)."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from services.common.config import SERVICES

from . import _env
from ._util import ROOT, balcao

COMPOSE = ROOT / "docker-compose.yml"
INFRA = {"gateway", "postgres", "rabbitmq", "s3"}
ONE_SHOT = {"keys", "migrate", "s3-bucket"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def balcao_services(compose) -> dict:
    return {name: svc for name, svc in compose["services"].items() if name not in INFRA}


def test_compose_specification_without_version_key(compose):
    assert "version" not in compose
    expected = INFRA | ONE_SHOT | {f"{s}-{role}" for s in SERVICES for role in ("web", "worker")}
    assert set(compose["services"]) == expected


def _compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:  # the YAML checks in this file still run without it
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    return binary


def _compose_config(binary: str, directory, env_text: str) -> subprocess.CompletedProcess:
    shutil.copy(COMPOSE, directory / "docker-compose.yml")
    if not (directory / "deploy").exists():
        shutil.copytree(ROOT / "deploy", directory / "deploy")
    (directory / ".env").write_text(env_text)
    return subprocess.run([binary, "-f", "docker-compose.yml", "config", "-q"], cwd=directory,
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/local/bin:/usr/bin:/bin"})


def test_docker_compose_accepts_the_file(tmp_path):
    """.env.example with its one required blank filled in, as the operator does."""
    binary = _compose_binary()
    env_text = (ROOT / ".env.example").read_text().replace("\nBALCAO_SMTP_URL=\n",
                                                           "\nBALCAO_SMTP_URL=smtp://mail.example:587\n")
    result = _compose_config(binary, tmp_path, env_text)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_run_without_an_smtp_relay(tmp_path):
    """A deployment made from the defaults must not run with e-mail going nowhere (or to a page
    anyone could read): .env.example leaves BALCAO_SMTP_URL blank and Compose stops, naming it."""
    binary = _compose_binary()
    result = _compose_config(binary, tmp_path, (ROOT / ".env.example").read_text())
    assert result.returncode != 0
    assert "BALCAO_SMTP_URL" in result.stderr
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, svc in balcao_services(compose).items():
        if name not in ONE_SHOT:  # every web and worker receives it, required
            assert svc["environment"]["BALCAO_SMTP_URL"].startswith("${BALCAO_SMTP_URL:?"), name


def test_docker_compose_refuses_to_run_without_the_passwords(tmp_path):
    """A missing .env value must stop Compose, not start PostgreSQL with an empty password."""
    binary = _compose_binary()
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("BALCAO_SECRET_KEY=x\n")
    result = subprocess.run([binary, "-f", "docker-compose.yml", "config", "-q"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr or "RABBITMQ_PASSWORD" in result.stderr


def test_every_balcao_command_is_a_valid_invocation(compose):
    for name, svc in balcao_services(compose).items():
        command = svc["command"]
        assert command[0] == "balcao", name
        result = balcao(*command[1:], "--help")
        assert result.returncode == 0, f"{name}: {command}: {result.stderr}"


def test_the_command_check_catches_a_wrong_service_name():
    """Control for the test above: `--help` does not hide an invalid service name."""
    assert balcao("web", "billing", "--bind", "0.0.0.0:8000", "--help").returncode != 0


def test_each_service_has_a_web_and_a_worker_running_itself(compose):
    services = balcao_services(compose)
    for svc in SERVICES:
        web, worker = services[f"{svc}-web"], services[f"{svc}-worker"]
        assert web["command"][:3] == ["balcao", "web", svc]
        assert web["command"][web["command"].index("--bind") + 1] == "0.0.0.0:8000"
        assert worker["command"] == ["balcao", "worker", svc]
        for proc in (web, worker):
            # each process gets its own database only (it owns its data), and the broker
            env = proc["environment"]
            db_vars = {k for k in env if k.endswith("_DATABASE_URL")}
            assert db_vars == {f"BALCAO_{svc.upper()}_DATABASE_URL"}
            assert env[f"BALCAO_{svc.upper()}_DATABASE_URL"].endswith(f"/balcao_{svc}")
            assert env["BALCAO_BROKER_URL"].startswith("amqp://")


def test_web_healthchecks_hit_their_own_readyz(compose):
    from services.common.gateway import PREFIXES
    for svc in SERVICES:
        test = " ".join(compose["services"][f"{svc}-web"]["healthcheck"]["test"])
        assert f"http://127.0.0.1:8000{PREFIXES[svc]}/readyz" in test


def test_dependencies_wait_for_health_and_one_shot_jobs(compose):
    services = compose["services"]
    for name, svc in balcao_services(compose).items():
        if name == "keys":
            continue
        deps = svc["depends_on"]
        if name == "s3-bucket":  # talks to the object store only (and reads the keys for its config)
            assert deps["s3"]["condition"] == "service_healthy"
            assert deps["keys"]["condition"] == "service_completed_successfully", name
            continue
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["keys"]["condition"] == "service_completed_successfully", name
        if name != "migrate":
            assert deps["rabbitmq"]["condition"] == "service_healthy", name
            assert deps["migrate"]["condition"] == "service_completed_successfully", name
    pg_check = services["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in pg_check and pg_check[pg_check.index("-h") + 1] == "127.0.0.1"
    assert services["rabbitmq"]["healthcheck"]["test"][1:] == ["rabbitmq-diagnostics", "-q", "ping"]
    assert all(services["gateway"]["depends_on"][f"{s}-web"]["condition"] == "service_healthy" for s in SERVICES)


def test_one_image_long_running_restart_and_scalable(compose):
    services = compose["services"]
    images = {svc["image"] for svc in balcao_services(compose).values()}
    assert len(images) == 1
    for name, svc in balcao_services(compose).items():
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert svc["env_file"] == ".env"
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert svc["restart"] == expected, name
    for name, svc in services.items():
        assert "container_name" not in svc, name  # `--scale` needs generated names
        if name != "gateway":
            assert "ports" not in svc, name
    assert services["gateway"]["ports"] == ["${BALCAO_HTTP_PORT:-8080}:8080"]


def test_gateway_uses_the_template_and_names_the_upstreams(compose):
    gw = compose["services"]["gateway"]
    assert gw["image"] == "nginx:1.27-alpine"
    mount = gw["volumes"][0]
    assert mount["target"] == "/etc/nginx/templates/default.conf.template" and mount["read_only"] is True
    assert (ROOT / mount["source"]).resolve() == ROOT / "deploy/gateway/balcao.conf.template"
    for svc in SERVICES:
        assert gw["environment"][f"{svc.upper()}_UPSTREAM"] == f"{svc}-web:8000"


def test_keys_volume_shared_and_read_only_outside_the_keys_job(compose):
    for name, svc in balcao_services(compose).items():
        vols = svc["volumes"]
        keys = [v for v in vols if (v["target"] if isinstance(v, dict) else v.split(":")[1]) == "/var/lib/balcao/keys"]
        assert len(keys) == 1, name
        if name == "keys":
            assert keys[0] == "balcao-keys:/var/lib/balcao/keys"
        else:
            assert keys[0]["source"] == "balcao-keys" and keys[0]["read_only"] is True, name
    assert {"balcao-keys", "postgres-data", "rabbitmq-data"} <= set(compose["volumes"])


def test_no_secret_value_written_in_the_compose_file(compose):
    text = COMPOSE.read_text()
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|PASS$|SECRET", key):
                assert str(value).startswith("${"), f"{name}: {key}"
    for url in re.findall(r"(?:postgresql|amqp)://[^\s]+", text):
        password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        assert password.startswith("${"), url


def test_postgres_init_creates_one_database_per_service(compose):
    init = (ROOT / "deploy/postgres/init-databases.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+);", init))
    assert created == {f"balcao_{svc}" for svc in SERVICES}
    mounts = compose["services"]["postgres"]["volumes"]
    assert any(isinstance(m, dict) and m["source"] == "./deploy/postgres/init-databases.sql"
               and m["target"].startswith("/docker-entrypoint-initdb.d/") for m in mounts)


def test_env_example_documents_every_variable_with_placeholders():
    text = (ROOT / ".env.example").read_text()
    names = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", text, flags=re.M))
    config_src = (ROOT / "services/common/config.py").read_text()
    read = set(re.findall(r'_env\("([A-Z0-9_]+)"', config_src))
    read |= {f"BALCAO_{s.upper()}_{kind}" for s in SERVICES for kind in ("DATABASE_URL", "DATABASE_LISTEN_URL")}
    assert read <= names, read - names
    assert {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "BALCAO_HTTP_PORT", "BALCAO_FORWARDED_ALLOW_IPS"} <= names
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#?[A-Z][A-Z0-9_]+=", line):
            assert lines[i - 1].startswith("#"), f"no comment above {line}"
    for secret in ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "BALCAO_SECRET_KEY"):
        assert re.search(rf"^{secret}=change-me$", text, flags=re.M), secret


COMPOSE_SPEC_CANDIDATES = (
    "/usr/lib/python3/dist-packages/compose/config/compose_spec.json",  # Debian's docker-compose
)


def _compose_spec_schema() -> dict:
    import json
    from pathlib import Path
    for candidate in COMPOSE_SPEC_CANDIDATES:
        if Path(candidate).exists():
            return json.loads(Path(candidate).read_text())
    found = subprocess.run(["dpkg", "-L", "docker-compose"], capture_output=True, text=True)
    for line in found.stdout.splitlines():
        if line.endswith("compose_spec.json"):
            return json.loads(Path(line).read_text())
    pytest.skip("the Compose specification schema is not installed (Debian package docker-compose)")


def _spec_errors(document) -> list[str]:
    import jsonschema
    schema = _compose_spec_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_is_valid_against_the_compose_specification_schema(compose):
    assert _spec_errors(compose) == []


def test_the_schema_check_catches_an_invalid_compose_file(compose):
    """Control for the test above: the schema does reject what Compose would reject."""
    import copy
    broken = copy.deepcopy(compose)
    broken["services"]["notifier-worker"]["restart_policy"] = "always"   # not a service key
    broken["services"]["auth-web"]["healthcheck"]["retries"] = "many"     # not a number
    errors = _spec_errors(broken)
    assert any("notifier-worker" in e and "restart_policy" in e for e in errors), errors
    assert any("auth-web/healthcheck/retries" in e for e in errors), errors


def test_webs_and_workers_expose_metrics_inside_the_network_only(compose):
    gateway = compose["services"]["gateway"]
    routed = {v.split(":")[1] for k, v in gateway["environment"].items() if k.endswith("_UPSTREAM")}
    for svc in SERVICES:
        for role in ("web", "worker"):
            container = compose["services"][f"{svc}-{role}"]
            bind = container["environment"]["BALCAO_METRICS_BIND"]
            assert bind == "0.0.0.0:9464"  # scraped as <container>:9464 on the compose network
            assert "ports" not in container and "expose" not in container  # never published
            assert bind.rsplit(":", 1)[1] not in routed  # the gateway proxies to 8000 only
    assert [p.split(":")[-1] for p in gateway["ports"]] == ["8080"]
    template = (ROOT / "deploy/gateway/balcao.conf.template").read_text()
    assert "9464" not in template
    assert re.search(r'if \(\$uri ~\*? "/metrics/\?\$"\) \{\s*return 404;', template)


def test_every_web_and_worker_gets_what_it_needs(compose, tmp_path):
    """The variables a web or worker of the distributed mode must be given (tests/deploy/_env.py,
    from walking the code: the same check as deploy/kubernetes) are in its environment, in .env
    (as .env.example sets them) or in the image; the fallbacks on key files are made by `keys`."""
    env_file = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    for svc in SERVICES:
        for role in ("web", "worker"):
            given = set(compose["services"][f"{svc}-{role}"]["environment"]) | env_file | _env.image_env()
            missing = _env.required_for(svc, role) - given
            assert not missing, f"{svc}-{role}: {sorted(missing)} not set"
    assert compose["services"]["keys"]["command"] == ["balcao", "keys"]
    assert set(_env.KEYS_FILE_FALLBACK.values()) <= _env.keys_dir_files(tmp_path)
