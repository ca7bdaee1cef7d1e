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
    return True
