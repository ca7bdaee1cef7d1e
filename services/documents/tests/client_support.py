"""What the client-side tests of Documentos share: the departments by name, client users with the
access a test needs (through the users service's own functions and events), page fragments."""
from __future__ import annotations

import re
import uuid

from sqlalchemy import select

from services.common.runtime import database
from services.documents import models
from services.users import models as users_models
from services.users import services as users_services
from services.users.tests.conftest import Person, link_client, users_db


def department_id(config, firm_id, name: str) -> uuid.UUID:
    with database("documents", config).begin() as s:
        found = s.scalar(select(models.Department.id).where(models.Department.firm_id == firm_id,
                                                            models.Department.name == name))
    assert found is not None, name
    return found


def _levels(config, firm_id, levels: dict[str, str]) -> dict[uuid.UUID, str]:
    with users_db(config).begin() as s:
        named = {d.name: d.id for d in s.scalars(select(users_models.Department)
                                                 .where(users_models.Department.firm_id == firm_id))}
    return {named[name]: level for name, level in levels.items()}


def set_access(config, bus, *, firm, client_user_id, levels: dict[str, str], permissions: set[str]) -> None:
    """Editar usuário: the client user's departments ({name: level}) and permissions, as staff save them."""
    by_id = _levels(config, firm.id, levels)
    with users_db(config).begin() as s:
        cu = s.get(users_models.ClientUser, client_user_id)
        users_services.update_client_user(s, firm=s.get(users_models.Firm, firm.id), client_user=cu, name=cu.name,
                                          email=cu.email, company_ids=[c.id for c in cu.companies],
                                          departments=by_id, permissions=permissions)
    bus.pump()


def new_client(config, bus, *, firm, company_ids, name: str, email: str, levels: dict[str, str] | None = None,
               permissions: set[str] | None = None) -> tuple[Person, uuid.UUID]:
    """A client user of `firm` with a login: (the person, their client user id)."""
    with users_db(config).begin() as s:
        cu = users_services.register_client_user(
            s, firm=s.get(users_models.Firm, firm.id), name=name, email=email, company_ids=company_ids,
            access="now", departments=_levels(config, firm.id, levels) if levels else None, permissions=permissions)
        cu_id = cu.id
    person = Person(uuid.uuid4(), email, name)
    bus.pump()
    link_client(config, firm_id=firm.id, client_user_id=cu_id, identity_id=person.identity_id)
    bus.pump()
    return person, cu_id


def new_company(config, bus, *, firm, name: str, cnpj: str) -> uuid.UUID:
    with users_db(config).begin() as s:
        company = users_services.create_company(s, firm=s.get(users_models.Firm, firm.id), name=name, cnpj=cnpj)
        company_id = company.id
    bus.pump()
    return company_id


def section(html: str, section_id: str) -> str:
    """The <section> whose heading has id `section_id`."""
    match = re.search(r'<section[^>]*aria-labelledby="' + re.escape(section_id) + r'".*?</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(0)


def rows(html: str) -> list[str]:
    """The text of each row of the table bodies in `html`."""
    bodies = "".join(re.findall(r"<tbody>.*?</tbody>", html, re.S))
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in re.findall(r"<tr>.*?</tr>", bodies, re.S)]
