"""Operator provisioning (the `balcao create-firm` / `create-company` commands) and the demo
data of the embedded mode. It calls the services' own functions against their own databases,
like an operator with access to both; it is not a service and holds no business rule."""
from __future__ import annotations

import uuid

from sqlalchemy import select
from stdnum.br import cnpj as cnpj_mod

from services.common.config import Config
from services.common.contracts import normalize_email
from services.common.runtime import database, migrate


def _ready(config: Config, *services: str) -> None:
    for svc in services:
        migrate(svc, config)  # idempotent: a no-op when the schema is current


def ensure_identity(config: Config, *, email: str, name: str, password: str):
    """The identity id for `email`, registering it (with this password) when new."""
    from services.auth import models as auth_models
    from services.auth import services as auth_services
    with database("auth", config).begin() as session:
        existing = session.execute(select(auth_models.Identity).where(
            auth_models.Identity.email == normalize_email(email))).scalar_one_or_none()
        if existing is not None:
            return existing.id, False
        try:
            identity = auth_services.register_identity(session, email=email, name=name, password=password)
        except auth_services.PasswordPolicyError as exc:
            raise ValueError(" ".join(exc.messages)) from exc
        return identity.id, True


def create_firm(config: Config, *, name: str, cnpj: str, admin_name: str, admin_email: str,
                admin_password: str) -> dict:
    from services.users import services as users_services
    _ready(config, "auth", "users")
    if not cnpj_mod.is_valid(cnpj):
        raise ValueError("CNPJ inválido.")
    identity_id, _created = ensure_identity(config, email=admin_email, name=admin_name, password=admin_password)
    with database("users", config).begin() as session:
        firm = users_services.create_firm(session, name=name, cnpj=cnpj, admin_identity_id=identity_id,
                                          admin_name=admin_name, admin_email=admin_email)
        return {"id": str(firm.id), "name": firm.name, "slug": firm.slug}


def create_company(config: Config, *, firm_slug: str, name: str, cnpj: str | None = None, cpf: str | None = None,
                   trade_name: str | None = None, code: str | None = None) -> dict:
    """A client company of the firm: `name` is its razão social; a CNPJ (numeric or alphanumeric)
    or, for a person as client, a CPF."""
    from services.users import models as users_models
    from services.users import services as users_services
    _ready(config, "users")
    with database("users", config).begin() as session:
        firm = session.execute(select(users_models.Firm).where(users_models.Firm.slug == firm_slug)).scalar_one_or_none()
        if firm is None:
            raise ValueError(f"Escritório não encontrado: {firm_slug}")
        company = users_services.create_company(session, firm=firm, name=name, cnpj=cnpj, cpf=cpf,
                                                trade_name=trade_name, code=code)
        return {"id": str(company.id), "name": company.name}


def _cnpj(base12: str) -> str:
    return base12 + cnpj_mod.calc_check_digits(base12)


DEMO_LOGINS = [
    ("Ana Souza", "ana@alfa.example", "Alfa-Demo-2026", "administradora da Contabilidade Alfa"),
    ("Bruno Lima", "bruno@beta.example", "Beta-Demo-2026", "administrador da Contabilidade Beta"),
    ("Carlos Pereira", "carlos@cliente.example", "Carlos-Demo-2026", "cliente da Contabilidade Alfa"),
    ("Débora Alves", "debora@alfa.example", "Debora-Demo-2026",
     "colaboradora da Contabilidade Alfa (carteira: Padaria Pão Quente Ltda)"),
]


def seed_demo(config: Config) -> bool:
    """Two firms, their companies, Carlos already registered at Alfa (and Elisa, of Alfa's other
    company, not invited), and Débora, a Colaborador of Alfa whose carteira is Carlos's company.
    Idempotent."""
    from services.users import models as users_models
    from services.users import queries as users_queries
    from services.users import services as users_services
    with database("users", config).begin() as session:
        if session.execute(select(users_models.Firm).where(users_models.Firm.slug == "contabilidade-alfa")).first():
            return False
    (ana, ana_email, ana_pw, _), (bruno, bruno_email, bruno_pw, _), (carlos, carlos_email, carlos_pw, _), \
        (debora, debora_email, debora_pw, _) = DEMO_LOGINS
    alfa = create_firm(config, name="Contabilidade Alfa", cnpj=_cnpj("112223330001"), admin_name=ana,
                       admin_email=ana_email, admin_password=ana_pw)
    create_firm(config, name="Contabilidade Beta", cnpj=_cnpj("445556660001"), admin_name=bruno,
                admin_email=bruno_email, admin_password=bruno_pw)
    padaria = create_company(config, firm_slug=alfa["slug"], name="Padaria Pão Quente Ltda", cnpj=_cnpj("123456780001"))
    oficina = create_company(config, firm_slug=alfa["slug"], name="Oficina Rápida ME", cnpj=_cnpj("234567890001"))
    # a CNPJ of the alphanumeric kind (since July 2026) and a person as client (a CPF)
    create_company(config, firm_slug=alfa["slug"], name="Comércio Digital Alfa Ltda", cnpj=_cnpj("12ABC34501DE"),
                   trade_name="Loja Digital")
    create_company(config, firm_slug=alfa["slug"], name="José Pereira Produtor Rural", cpf="39053344705")
    create_company(config, firm_slug="contabilidade-beta", name="Pereira Consultoria Ltda", cnpj=_cnpj("345678900001"))
    create_company(config, firm_slug="contabilidade-beta", name="Mercado Bom Preço Ltda", cnpj=_cnpj("456789010001"))
    carlos_id, _ = ensure_identity(config, email=carlos_email, name=carlos, password=carlos_pw)
    with database("users", config).begin() as session:
        firm = session.execute(select(users_models.Firm).where(users_models.Firm.slug == alfa["slug"])).scalar_one()
        departments = {d.name: d.id for d in users_queries.departments_of(session, firm=firm)}
        # a partner of the padaria: sends notas and payroll papers (Fiscal, Pessoal: Contribuinte), reads the
        # rest; e-mail and portal for documents and guias, the firm's notices in the portal only
        levels = {"Contábil": "reviewer", "Fiscal": "contributor", "Pessoal": "contributor",
                  "Societário": "reviewer", "Financeiro": "reviewer"}
        user = users_services.register_client_user(session, firm=firm, name=carlos, email=carlos_email,
                                                   cpf="52998224725", phone="+5511987654321",
                                                   company_ids=[uuid.UUID(padaria["id"])], access=None,
                                                   departments={departments[n]: lv for n, lv in levels.items()},
                                                   notifications={"firm_notices": "portal"})
        users_services.grant_membership(session, firm_id=firm.id, client_user_id=user.id, identity_id=carlos_id)
        # a client of the other company: outside Débora's carteira (access not activated, no e-mail)
        users_services.register_client_user(session, firm=firm, name="Elisa Matos", email="elisa@cliente.example",
                                            company_ids=[uuid.UUID(oficina["id"])], access=None)
    debora_id, _ = ensure_identity(config, email=debora_email, name=debora, password=debora_pw)
    with database("users", config).begin() as session:
        firm = session.execute(select(users_models.Firm).where(users_models.Firm.slug == alfa["slug"])).scalar_one()
        contabil = session.execute(select(users_models.Department.id).where(
            users_models.Department.firm_id == firm.id, users_models.Department.name == "Contábil")).scalar_one()
        users_services.add_staff_member(session, firm=firm, identity_id=debora_id, name=debora, email=debora_email,
                                        role="staff", department_ids=[contabil], company_ids=[uuid.UUID(padaria["id"])])
    seed_demo_documents(config, firm_id=uuid.UUID(alfa["id"]), company_id=uuid.UUID(padaria["id"]),
                        cnpj=_cnpj("123456780001"), by=ensure_identity(config, email=ana_email, name=ana,
                                                                       password=ana_pw)[0], by_name=ana)
    return True


def _deliver_to_documents(config: Config) -> None:
    """The users service's events recorded so far, handed to the documents service's consumers now
    (its projection: who sees what), so that the demo documents can be published before the server
    runs. The relay publishes the same events later; the documents consumer skips what it processed."""
    from services.common.messaging import handle_message
    from services.documents import consumers as documents_consumers
    from services.documents import models as documents_models
    from services.users import models as users_models
    _ready(config, "documents")
    with database("users", config).begin() as session:
        envelopes = session.execute(select(users_models.outbox.c.envelope)
                                    .where(users_models.outbox.c.published_at.is_(None))
                                    .order_by(users_models.outbox.c.seq)).scalars().all()
    for envelope in envelopes:
        handler = documents_consumers.HANDLERS.get(envelope["type"])
        if handler is not None:
            handle_message(database("documents", config), documents_models.processed, "documents", handler,
                           envelope, config=config)


def seed_demo_documents(config: Config, *, firm_id, company_id, cnpj: str, by, by_name: str) -> None:
    """Documents and guias of the padaria at Alfa (Carlos's company), dated from today so that the
    demo always has guias due soon (Pendências) and one overdue."""
    import io
    from datetime import date, timedelta
    from decimal import Decimal

    from services.documents import queries as documents_queries
    from services.documents import services as documents_services
    from services.documents.models import Department
    from services.documents.sample_pdfs import darf_guia, das_guia, text_pdf
    from services.documents.vault import vault_from_config
    _deliver_to_documents(config)
    today = date.today()
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%m/%Y")
    punctuated = f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"
    files = [  # (department, file name, bytes, metadata)
        ("Fiscal", f"DAS {last_month.replace('/', '-')}.pdf",
         das_guia(punctuated, last_month, today + timedelta(days=5), Decimal("1234.56")),
         documents_services.Metadata(last_month, "DAS", today + timedelta(days=5), Decimal("1234.56"))),
        ("Fiscal", "DARF IRPJ trimestral.pdf", darf_guia(cnpj, last_month, today - timedelta(days=3), Decimal("987.65")),
         documents_services.Metadata(last_month, "DARF", today - timedelta(days=3), Decimal("987.65"))),
        ("Pessoal", f"Folha de pagamento {last_month.replace('/', '-')}.pdf",
         text_pdf("Padaria Pão Quente Ltda", f"Competência: {last_month}", "Resumo da folha: 12 empregados",
                  title="Folha de pagamento"), documents_services.Metadata(last_month)),
        ("Contábil", "Balancete de verificação.pdf",
         text_pdf("Padaria Pão Quente Ltda", f"Período: {last_month}", "Ativo, passivo e resultado do período",
                  title="Balancete de verificação"), documents_services.Metadata(last_month)),
    ]
    vault = vault_from_config(config)
    actor = documents_services.Actor(by, by_name, None)
    with database("documents", config).begin() as session:
        firm, member = next((f, m) for f, m in documents_queries.memberships(session, identity_id=by) if f.id == firm_id)
        access = documents_queries.access_for(session, firm, member)
        departments = {d.name: d.id for d in session.scalars(select(Department).where(Department.firm_id == firm_id))}
        for department, name, data, meta in files:
            received = documents_services.receive_file(vault, io.BytesIO(data), name=name,
                                                       max_bytes=config.documents_max_mb * 1024 * 1024)
            documents_services.add_document(session, access=access, stored=received.stored, name=received.name,
                                            kind=received.kind, company_id=company_id,
                                            department_id=departments[department], meta=meta, actor=actor)
