"""The `balcao` command: run the product, migrate, run a service's web or worker process,
and provision firms and companies against the configured databases."""
from __future__ import annotations

import argparse
import logging
import sys

from services.common.config import SERVICES, load_config


def _migrate_all(config, services=SERVICES):
    from services.common.runtime import migrate
    for svc in services:
        migrate(svc, config)


def cmd_migrate(args):
    config = load_config()
    _migrate_all(config, [args.service] if args.service else SERVICES)
    print("migrated:", ", ".join([args.service] if args.service else SERVICES))


def cmd_wait_migrated(args):
    """Wait until the service's database is at this code's migration heads (a Kubernetes
    initContainer: the pods start once the balcao-migrate Job has run). 0 when it is, 1 after
    --timeout seconds, naming what is missing; a database that does not answer is retried."""
    import time

    from services.common.runtime import schema_revisions
    config = load_config()
    deadline = time.monotonic() + args.timeout
    problem = ""
    while True:
        try:
            current, heads = schema_revisions(args.service, config)
        except Exception as exc:  # the database is not there yet: report it and try again
            problem = f"the {args.service} database does not answer: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        else:
            if current == heads:
                print(f"{args.service}: schema at {', '.join(sorted(heads))}")
                return 0
            problem = (f"the {args.service} database is at {', '.join(sorted(current)) or 'no revision'}, "
                       f"this code needs {', '.join(sorted(heads))}: run `balcao migrate` (the balcao-migrate Job)")
        if time.monotonic() >= deadline:
            print(f"erro: {problem}", file=sys.stderr)
            return 1
        print(f"waiting: {problem}", file=sys.stderr, flush=True)
        time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())) or 0.01)


def cmd_makemigration(args):
    """Developer helper: autogenerate a new Alembic revision for one service."""
    from pathlib import Path

    from alembic import command
    from alembic.config import Config as AlembicConfig

    from services.common.runtime import database, service_module
    config = load_config()
    module = service_module(args.service, "models")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(module.__file__).parent / "migrations"))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database"] = database(args.service, config)
    command.upgrade(cfg, "head")
    command.revision(cfg, message=args.message, autogenerate=True)


def cmd_keys(args):
    from services.common.keys import ensure_keys
    config = load_config()
    ensure_keys(config.keys_dir)
    print(config.keys_dir)


def cmd_documents_bucket(args):
    """The documents' S3 bucket exists (created if missing; idempotent). A one-shot before the
    documents service starts (docker-compose's s3-bucket)."""
    from services.documents.vault import StorageUnavailable, vault_from_config
    config = load_config()
    if not config.documents_s3_endpoint:
        print("BALCAO_DOCUMENTS_S3_ENDPOINT is not set: documents are stored on the local filesystem")
        return 0
    try:
        vault_from_config(config).ensure_bucket()
    except StorageUnavailable as exc:
        print(f"erro: o armazenamento S3 não respondeu: {exc}", file=sys.stderr)
        return 1
    print(f"bucket ready: {config.documents_s3_bucket}")
    return 0


def cmd_announce_state(args):
    """The users service records its whole state as events once more (after installing a service
    that consumes them — the documents service — on a portal that already has firms)."""
    from services.common.runtime import database
    from services.users import pii
    from services.users.services import announce_state
    config = load_config()
    _migrate_all(config, ["users"])
    pii.configure(config)
    with database("users", config).begin() as session:
        counts = announce_state(session)
    print("announced: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


def cmd_create_firm(args):
    from services.provision import create_firm
    config = load_config()
    try:
        firm = create_firm(config, name=args.name, cnpj=args.cnpj, admin_name=args.admin_name,
                           admin_email=args.admin_email, admin_password=args.admin_password)
    except ValueError as exc:
        print(f"erro: {exc}", file=sys.stderr)
        return 2
    print(f"Escritório criado: {firm['name']} (administrador: {args.admin_email})")
    print(firm["slug"])


def cmd_create_company(args):
    from services.provision import create_company
    config = load_config()
    try:
        company = create_company(config, firm_slug=args.firm, name=args.name, cnpj=args.cnpj, cpf=args.cpf,
                                 trade_name=args.nome_fantasia, code=args.codigo)
    except ValueError as exc:
        print(f"erro: {exc}", file=sys.stderr)
        return 2
    print(f"Empresa criada: {company['name']}")
    print(company["id"])


def cmd_run(args):
    from services.common.embedded import run_embedded
    run_embedded(load_config(), host=args.host)


def cmd_worker(args):
    from services.common.worker import run_worker
    run_worker(args.service, load_config())


def cmd_web(args):
    from services.common.worker import run_web
    run_web(args.service, load_config(), bind=args.bind, workers=args.workers)


def cmd_dead_letters_list(args):
    from services.common.messaging import list_dead_letters
    letters = list_dead_letters(load_config().broker_url)
    if not letters:
        print("no dead letters")
        return 0
    print(f"{'ID':<14} {'TYPE':<32} {'QUEUE':<48} {'ATTEMPTS':>8}  REASON")
    for d in letters:
        print(f"{d.id:<14} {d.type:<32} {d.queue:<48} {d.attempts:>8}  {d.reason}")
    return 0


def cmd_dead_letters_replay(args):
    from services.common.messaging import replay_dead_letters
    if not args.all and not args.ids:
        print("error: give dead-letter IDs or --all", file=sys.stderr)
        return 2
    replayed = replay_dead_letters(load_config().broker_url, None if args.all else args.ids)
    for d in replayed:
        print(f"replayed {d.id} ({d.type}) to {d.queue}")
    missing = sorted(set(args.ids or []) - {d.id for d in replayed})
    for ident in missing:
        print(f"not found: {ident}", file=sys.stderr)
    print(f"{len(replayed)} dead letter(s) replayed")
    return 1 if missing else 0


def cmd_migrate_queues(args):
    from kombu.exceptions import OperationalError

    from services.common.queue_migration import MigrationRefused, migrate_queues
    try:
        migrate_queues(load_config().broker_url)
    except MigrationRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, OperationalError) as exc:
        print(f"error: the broker (BALCAO_BROKER_URL) did not answer: {exc}. Run the command again once "
              f"it does (a run cut midway is finished by the next one)", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="balcao", description="Balcão — Portal do Cliente")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the whole product in one process (embedded mode)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1); any other than a loopback address needs BALCAO_SMTP_URL")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.add_argument("--service", choices=SERVICES)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("wait-migrated", help="wait until a service's database has this code's migrations "
                       "(exit 1 after --timeout seconds)")
    p.add_argument("service", choices=SERVICES)
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait (default 600)")
    p.add_argument("--interval", type=float, default=2, help="seconds between checks (default 2)")
    p.set_defaults(func=cmd_wait_migrated)

    p = sub.add_parser("makemigration", help="autogenerate a migration for a service (developers)")
    p.add_argument("service", choices=SERVICES)
    p.add_argument("-m", "--message", required=True)
    p.set_defaults(func=cmd_makemigration)

    p = sub.add_parser("keys", help="create missing signing/sealing keys in BALCAO_KEYS_DIR")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("announce-state", help="record the users service's state as events again (after "
                       "adding the documents service to a portal that already has firms)")
    p.set_defaults(func=cmd_announce_state)

    p = sub.add_parser("documents-bucket", help="create the documents' S3 bucket if missing")
    p.set_defaults(func=cmd_documents_bucket)

    p = sub.add_parser("web", help="serve one service's web app under gunicorn")
    p.add_argument("service", choices=SERVICES)
    p.add_argument("--bind", default="127.0.0.1:8001")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("worker", help="run one service's consumers and outbox relay")
    p.add_argument("service", choices=SERVICES)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("dead-letters", help="list or replay the messages in the dead-letter queue")
    dl = p.add_subparsers(dest="action", required=True)
    q = dl.add_parser("list", help="id, type, queue, attempts and reason of every dead letter")
    q.set_defaults(func=cmd_dead_letters_list)
    q = dl.add_parser("replay", help="republish dead letters to their original queue")
    q.add_argument("ids", nargs="*", metavar="ID")
    q.add_argument("--all", action="store_true", help="replay every dead letter")
    q.set_defaults(func=cmd_dead_letters_replay)

    p = sub.add_parser("migrate-queues", help="turn the classic RabbitMQ queues of an earlier version into "
                       "quorum queues, messages kept (stop every worker first)")
    p.set_defaults(func=cmd_migrate_queues)

    p = sub.add_parser("create-firm", help="create a firm and its administrator")
    p.add_argument("--name", required=True)
    p.add_argument("--cnpj", required=True)
    p.add_argument("--admin-name", required=True)
    p.add_argument("--admin-email", required=True)
    p.add_argument("--admin-password", required=True)
    p.set_defaults(func=cmd_create_firm)

    p = sub.add_parser("create-company", help="create a client company of a firm (a CNPJ, or a person's CPF)")
    p.add_argument("--firm", required=True, help="the firm's slug")
    p.add_argument("--name", required=True, help="the razão social")
    document = p.add_mutually_exclusive_group(required=True)
    document.add_argument("--cnpj", help="numeric or alphanumeric (12.ABC.345/01DE-35), with or without punctuation")
    document.add_argument("--cpf", help="for a person as client (produtor rural, autônomo)")
    p.add_argument("--nome-fantasia", dest="nome_fantasia", help="the trade name (optional)")
    p.add_argument("--codigo", help="the firm's internal code for the company (optional)")
    p.set_defaults(func=cmd_create_company)

    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
