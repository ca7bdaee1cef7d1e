"""Test helpers of the documents service, shared by its tests, the route walk and the end-to-end tests."""
from __future__ import annotations


def publish(config, *, firm_id, company_id, department_name: str, data: bytes, name: str, by,
            meta=None, folder_id=None):
    """Staff (`by`, a Person) publish a file into a company × department, as the upload page does."""
    import io

    from sqlalchemy import select

    from services.common.runtime import database
    from services.documents import models, queries, services
    from services.documents.vault import vault_from_config

    with database("documents", config).begin() as s:
        department_id = s.scalar(select(models.Department.id).where(models.Department.firm_id == firm_id,
                                                                    models.Department.name == department_name))
        firm, member = next((f, m) for f, m in queries.memberships(s, identity_id=by.identity_id) if f.id == firm_id)
        access = queries.access_for(s, firm, member)
        received = services.receive_file(vault_from_config(config), io.BytesIO(data), name=name,
                                         max_bytes=config.documents_max_mb * 1024 * 1024)
        doc = services.add_document(s, access=access, stored=received.stored, name=received.name,
                                    kind=received.kind, company_id=company_id, department_id=department_id,
                                    folder_id=folder_id, meta=meta or services.Metadata(),
                                    actor=services.Actor(by.identity_id, by.name, "127.0.0.1"))
        return doc.id


def pending_batch(config, *, firm_id, by, files: list[tuple[str, bytes]]):
    """Staff (`by`) leave a Distribuir automaticamente batch waiting for review, as the page does:
    each PDF stored, read and proposed, pending. The batch's id."""
    import io
    import uuid

    from services.common.runtime import database
    from services.documents import distribution, queries, services
    from services.documents.vault import vault_from_config

    batch_id = uuid.uuid4()
    with database("documents", config).begin() as s:
        firm, member = next((f, m) for f, m in queries.memberships(s, identity_id=by.identity_id) if f.id == firm_id)
        access = queries.access_for(s, firm, member)
        index = distribution.CompanyIndex(queries.company_index_rows(s, access))
        departments = queries.departments_of(s, access)
        for name, data in files:
            received, reading = services.receive_guia(vault_from_config(config), io.BytesIO(data), name=name,
                                                      max_bytes=config.documents_max_mb * 1024 * 1024)
            services.add_to_batch(s, access=access, received=received, proposal=distribution.propose(reading, index),
                                  department_id=departments[0].id if departments else None, batch_id=batch_id,
                                  actor=services.Actor(by.identity_id, by.name, "127.0.0.1"))
    return batch_id
