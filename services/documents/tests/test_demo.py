"""`make run`'s demo data shows a living portal: Carlos's padaria at Alfa has guias (one due soon,
one overdue), a payroll and a balancete, published through the service's own functions."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from services.common.runtime import database
from services.documents import models, queries


def test_the_demo_has_documents_and_guias_carlos_sees(config):
    from services.provision import seed_demo
    assert seed_demo(config)
    with database("users", config).begin() as s:
        from services.users.models import ClientUser
        carlos_identity = s.scalar(select(ClientUser.identity_id).where(ClientUser.email == "carlos@cliente.example"))
    with database("documents", config).begin() as s:
        [(firm, member)] = queries.memberships(s, identity_id=carlos_identity)
        access = queries.access_for(s, firm, member)
        docs = list(s.scalars(select(models.Document).where(access.document_filter(),
                                                            models.Document.status == "published")))
    assert firm.name == "Contabilidade Alfa"
    assert len(docs) == 4
    due = sorted(d.vencimento for d in docs if d.guia_tipo)
    assert len(due) == 2 and due[0] < date.today() < due[1]
