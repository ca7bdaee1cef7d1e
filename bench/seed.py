"""Seeding for the benchmark through the services' own functions, with bulk paths for volume.

The bulk paths write rows exactly as `users.services.create_firm` / `register_client_user`
would (same columns, normalized e-mails, valid CPFs, status "not_invited"), but in
executemany batches and without the outbox events those functions record (nobody consumes
them for firms nobody logs into, and 100,000 events would only measure the relay).

Documents likewise (`bulk_documents`): rows as `documents.services.add_document` + `publish`
write them, built by the same model constructor, without the outbox event and audit entry.
"""
from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, select
from stdnum.br import cnpj as cnpj_mod

from services.auth import services as auth_services
from services.common.runtime import database
from services.users import models as um
from services.users import pii
from services.users import services as users_services

FIRST = ["Ana", "Bruno", "Carlos", "Daniela", "Eduardo", "Fernanda", "Gabriel", "Helena", "Igor", "Juliana",
         "Kátia", "Lucas", "Mariana", "Nelson", "Olívia", "Paulo", "Quitéria", "Rafael", "Sofia", "Tiago",
         "Úrsula", "Vinícius", "Wagner", "Xênia", "Yara", "Zeca"]
LAST = ["Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima", "Gomes",
        "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes", "Soares", "Fernandes", "Vieira", "Barbosa",
        "Rocha", "Dias", "Nascimento", "Andrade", "Moreira", "Nunes", "Marques", "Machado", "Mendes", "Freitas"]
# Razão social of the generated companies: "<activity> <surname> <surname> <legal form>"
ACTIVITY = ["Padaria", "Mercado", "Comércio", "Transportes", "Oficina", "Farmácia", "Construtora", "Restaurante",
            "Distribuidora", "Clínica", "Escola", "Papelaria", "Auto Peças", "Consultoria", "Indústria"]
LEGAL_FORM = ["Ltda", "ME", "EPP", "S.A.", "Eireli"]
BATCH = 5000


def cnpj_for(n: int) -> str:
    base = f"{n:08d}0001"
    return base + cnpj_mod.calc_check_digits(base)


def cpf_for(n: int) -> str:
    base = f"{(n * 7919) % 10**9:09d}"
    if len(set(base)) == 1:
        base = "123456780"
    return base + _cpf_check_digits(base)


def _cpf_check_digits(base9: str) -> str:
    """The two CPF check digits (mod 11) of nine digits."""
    d1 = sum((10 - i) * int(c) for i, c in enumerate(base9)) * 10 % 11 % 10
    d2 = sum((11 - i) * int(c) for i, c in enumerate(base9 + str(d1))) * 10 % 11 % 10
    return f"{d1}{d2}"


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)} {rng.choice(LAST)}"


def company_name(rng: random.Random) -> str:
    return f"{rng.choice(ACTIVITY)} {rng.choice(LAST)} {rng.choice(LAST)} {rng.choice(LEGAL_FORM)}"


def register_identity(config, *, email: str, name: str, password: str):
    """An identity through auth's own function (argon2id hash, identity.registered event)."""
    with database("auth", config).begin() as session:
        return auth_services.register_identity(session, email=email, name=name, password=password).id


def create_firm(config, *, n: int, name: str, admin_identity_id, admin_email: str) -> dict:
    with database("users", config).begin() as session:
        firm = users_services.create_firm(session, name=name, cnpj=cnpj_for(n), admin_identity_id=admin_identity_id,
                                          admin_name="Admin " + name, admin_email=admin_email)
        return {"id": firm.id, "name": firm.name, "slug": firm.slug}


def create_companies(config, *, firm_id, count: int, start: int) -> list:
    """Companies through users' own create_company (company.created events included); CNPJs
    cnpj_for(start) … cnpj_for(start + count - 1)."""
    rng = random.Random(start)
    ids = []
    with database("users", config).begin() as session:
        firm = session.get(um.Firm, firm_id)
        for i in range(count):
            ids.append(users_services.create_company(session, firm=firm, name=company_name(rng),
                                                     cnpj=cnpj_for(start + i)).id)
    return ids


def bulk_companies(config, *, firm_id, count: int, start: int) -> list[uuid.UUID]:
    """`count` companies of one firm, rows as create_company writes them (a valid CNPJ each,
    cnpj_for(start + i), stored without punctuation; a nome fantasia on every third, an internal
    code on every fifth), without its company.created events."""
    rng = random.Random(start)
    rows = []
    for i in range(start, start + count):
        name = company_name(rng)
        rows.append({"id": uuid.uuid4(), "firm_id": firm_id, "name": name,
                     "trade_name": name.split()[0] + " " + name.split()[1] if i % 3 == 0 else None,
                     "document_kind": "cnpj", "cnpj": cnpj_for(i), "cpf": None, "cpf_hash": None,
                     "code": f"C{i}" if i % 5 == 0 else None, "active": True})
    with database("users", config).begin() as session:
        for chunk in range(0, count, BATCH):
            session.execute(insert(um.Company), rows[chunk:chunk + BATCH])
    return [r["id"] for r in rows]


def add_colaborador(config, *, firm_id, identity_id, name: str, email: str, company_ids) -> None:
    """A Colaborador of the firm with these companies as carteira, through users' add_staff_member."""
    with database("users", config).begin() as session:
        firm = session.get(um.Firm, firm_id)
        users_services.add_staff_member(session, firm=firm, identity_id=identity_id, name=name, email=email,
                                        role="staff", company_ids=list(company_ids))


def bulk_firms(config, *, count: int, start: int) -> list[uuid.UUID]:
    """`count` firms, each with an administrator, as create_firm writes them."""
    now = um.utcnow()
    firms, staff = [], []
    for i in range(start, start + count):
        fid = uuid.uuid4()
        firms.append({"id": fid, "name": f"Escritório Bench {i}", "slug": f"escritorio-bench-{i}",
                      "cnpj": cnpj_for(i), "created_at": now})
        staff.append({"id": uuid.uuid4(), "firm_id": fid, "identity_id": uuid.uuid4(), "name": f"Admin {i}",
                      "email": f"admin{i}@bench-firm.example", "role": "admin", "active": True})
    with database("users", config).begin() as session:
        for chunk in range(0, len(firms), BATCH):
            session.execute(insert(um.Firm), firms[chunk:chunk + BATCH])
            session.execute(insert(um.StaffMember), staff[chunk:chunk + BATCH])
    return [f["id"] for f in firms]


def bulk_client_users(config, *, firm_id, count: int, start: int, company_ids=(), seed: int = 0,
                      per_company: int = 0) -> int:
    """`count` client users of one firm, rows as register_client_user(access=None) writes them:
    name and surname, normalized e-mail, a valid CPF on every other row (encrypted, with its search
    hash, under the stack's PII key: `pii.configure(config)` first), one company each: user i gets
    company_ids[i // per_company] with `per_company` (each company its own `per_company` users, the
    way a firm grows by taking on companies), else company_ids[i % len(company_ids)]."""
    rng = random.Random(seed * 1_000_003 + start)
    now = um.utcnow()
    company_ids = list(company_ids)
    users, links = [], []
    for i in range(start, start + count):
        name = person_name(rng)
        first, last = name.split()[0], name.split()[-1]
        cid = uuid.uuid4()
        cpf = cpf_for(i) if i % 2 == 0 else None
        users.append({"id": cid, "firm_id": firm_id, "name": name,
                      "email": f"{first}.{last}.{i}@cliente{i % 97}.example".lower(),
                      "cpf": cpf, "cpf_hash": pii.cpf_hash(cpf) if cpf else None,  # encrypted by the column type
                      "phone": None, "status": "not_invited",
                      "identity_id": None, "created_at": now, "updated_at": now, "invitation_id": None,
                      "invitation_sent_at": None, "invitation_expires_at": None, "delivery_error": None,
                      "link_refused_reason": None})
        if company_ids:
            company = company_ids[i // per_company] if per_company else company_ids[i % len(company_ids)]
            links.append({"client_user_id": cid, "company_id": company})
    db = database("users", config)
    for chunk in range(0, count, BATCH):
        with db.begin() as session:
            session.execute(insert(um.ClientUser), users[chunk:chunk + BATCH])
            if links:
                session.execute(insert(um.client_user_companies), links[chunk:chunk + BATCH])
    return count


def client_of_firms(config, *, identity_id, email: str, name: str, firm_ids) -> None:
    """The person becomes an active client user of every firm, through register_client_user and
    grant_membership (the same functions the invitation chain ends in)."""
    with database("users", config).begin() as session:
        for fid in firm_ids:
            firm = session.get(um.Firm, fid)
            cu = users_services.register_client_user(session, firm=firm, name=name, email=email)
            users_services.grant_membership(session, firm_id=fid, client_user_id=cu.id, identity_id=identity_id)


def invite(config, *, firm_id, people: list[tuple[str, str]]) -> list:
    """Client users registered with access "now": the running stack's chain creates the invitations."""
    ids = []
    with database("users", config).begin() as session:
        firm = session.get(um.Firm, firm_id)
        for name, email in people:
            ids.append(users_services.register_client_user(session, firm=firm, name=name, email=email,
                                                           access="now").id)
    return ids


def invitations_ready(config, *, client_user_ids) -> dict:
    """{client_user_id: invitation} for those whose invitation exists in invitations AND is known to users."""
    from services.invitations import models as im
    wanted = set(client_user_ids)
    with database("users", config).begin() as session:
        known = {cid: inv for cid, inv in session.execute(
            select(um.ClientUser.id, um.ClientUser.invitation_id).where(um.ClientUser.id.in_(wanted))) if inv}
    with database("invitations", config).begin() as session:
        rows = session.scalars(select(im.Invitation).where(im.Invitation.id.in_(set(known.values())),
                                                           im.Invitation.subject == "client_user",
                                                           im.Invitation.status == "pending")).all()
        for row in rows:
            session.expunge(row)
    return {row.subject_id: row for row in rows if known.get(row.subject_id) == row.id}


def client_user_of(config, *, firm_id, identity_id, name: str, email: str, company_ids) -> uuid.UUID:
    """An active client user of the firm for these companies — every department as Revisor, the
    default permissions —, through register_client_user and grant_membership (the events carry
    it to the documents service's projection)."""
    with database("users", config).begin() as session:
        firm = session.get(um.Firm, firm_id)
        cu = users_services.register_client_user(session, firm=firm, name=name, email=email,
                                                 company_ids=list(company_ids))
        users_services.grant_membership(session, firm_id=firm_id, client_user_id=cu.id, identity_id=identity_id)
        return cu.id


# --------------------------------------------------------------------------- documents

# What an accounting firm publishes month after month: (name, guia tipo or None).
DOCUMENT_TITLES = [("DAS", "DAS"), ("Folha de pagamento", None), ("DARF IRRF", "DARF"), ("FGTS", "FGTS"),
                   ("Balancete", None), ("GPS", "GPS"), ("Recibos de férias", None), ("ISS", "ISS"),
                   ("DCTFWeb", "DCTFWeb"), ("Pró-labore", None)]


def _row(obj) -> dict:
    """The column values an ORM object was built with (as the unit of work would insert them)."""
    return {c.key: obj.__dict__[c.key] for c in obj.__table__.columns if c.key in obj.__dict__}


def document_rows(*, firm_id, places, count: int, start: int, stored, kind, added_by, added_by_name: str,
                  today: date, now: datetime) -> list[dict]:
    """`count` published documents as `add_document(..., status="published")` writes them (the
    Document built with the same arguments, then `publish`'s status and published_at), document
    i (from `start`) in places[i % len(places)] — (company_id, department_id, folder_id or None).
    Half of them guias (tipo, vencimento from 60 days ago to 60 days ahead, valor); competência
    and name from the month. `stored` (vault.Stored) gives the size, SHA-256 and wrapped key of a
    real stored object; each row gets an object key of its own in the vault's format (the column
    is unique) with no object behind it: a listing never reads a document's bytes."""
    from services.documents.models import Document
    from services.documents.vault import new_object_key
    rows = []
    for i in range(start, start + count):
        company_id, department_id, folder_id = places[i % len(places)]
        title, tipo = DOCUMENT_TITLES[i % len(DOCUMENT_TITLES)]
        month, year = 12 - (i // len(DOCUMENT_TITLES)) % 12, today.year - (i // (12 * len(DOCUMENT_TITLES))) % 5
        at = now - timedelta(minutes=i)  # the later a row's number, the older it is
        doc = Document(id=uuid.uuid4(), firm_id=firm_id, company_id=company_id, department_id=department_id,
                       folder_id=folder_id, name=f"{title} {month:02d}-{year}.pdf", kind=kind.code,
                       media_type=kind.media_type, size=stored.size, sha256=stored.sha256,
                       object_key=new_object_key(),
                       wrapped_key=stored.wrapped_key, status="pending", competencia=f"{month:02d}/{year}",
                       guia_tipo=tipo, vencimento=today + timedelta(days=(i * 7) % 121 - 60) if tipo else None,
                       valor=Decimal(f"{100 + (i * 37) % 9000}.{i % 100:02d}") if tipo else None,
                       from_client=False, added_by=added_by, added_by_name=added_by_name, batch_id=None,
                       created_at=at)
        doc.status, doc.published_at = "published", at  # services.publish
        rows.append(_row(doc))
    return rows


def bulk_documents(config, **kwargs) -> list[uuid.UUID]:
    """document_rows(**kwargs) inserted in batches of BATCH; their ids."""
    from services.documents.models import Document
    rows = document_rows(**kwargs)
    db = database("documents", config)
    for chunk in range(0, len(rows), BATCH):
        with db.begin() as session:
            session.execute(insert(Document), rows[chunk:chunk + BATCH])
    return [r["id"] for r in rows]


def bulk_openings(config, *, firm_id, document_ids, identity_id, name: str, opened_at: datetime,
                  member_id=None) -> None:
    """The person opened these documents (record_opening's DocumentView, from the loopback's IP);
    with `member_id` (a client's), their "new_document" notifications too, read when opened."""
    from services.documents.models import DocumentView
    ids = list(document_ids)
    views = [_row(DocumentView(id=uuid.uuid4(), document_id=d, identity_id=identity_id, name=name, ip="127.0.0.1",
                               opened_at=opened_at)) for d in ids]
    with database("documents", config).begin() as session:
        for chunk in range(0, len(views), BATCH):
            session.execute(insert(DocumentView), views[chunk:chunk + BATCH])
    if member_id is not None:
        bulk_notifications(config, firm_id=firm_id, document_ids=ids, identity_id=identity_id, member_id=member_id,
                           created_at=opened_at, read_at=opened_at)


def bulk_notifications(config, *, firm_id, document_ids, identity_id, member_id, created_at: datetime,
                       read_at: datetime | None = None) -> None:
    """A client's "new_document" notification of each document: in the portal, already e-mailed
    in a digest; read at `read_at` (None: unread)."""
    from services.documents.models import Notification
    rows = [_row(Notification(id=uuid.uuid4(), firm_id=firm_id, identity_id=identity_id, member_id=member_id,
                              document_id=doc_id, kind="new_document", portal=True, emailed=True,
                              created_at=created_at, read_at=read_at)) for doc_id in document_ids]
    with database("documents", config).begin() as session:
        for chunk in range(0, len(rows), BATCH):
            session.execute(insert(Notification), rows[chunk:chunk + BATCH])


def add_folder(config, *, firm_id, company_id, department_id, name: str, created_by, parent_id=None) -> uuid.UUID:
    """A subfolder of a company × department (kind "regular"), as staff make one."""
    from services.common.messaging import utcnow
    from services.documents.models import Folder
    with database("documents", config).begin() as session:
        folder = Folder(id=uuid.uuid4(), firm_id=firm_id, company_id=company_id, department_id=department_id,
                        parent_id=parent_id, name=name, kind="regular", created_at=utcnow(), created_by=created_by)
        session.add(folder)
        return folder.id
