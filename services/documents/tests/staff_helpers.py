"""What the staff pages' tests share: URLs, a department's id, the documents' rows, posting a page's form."""
from __future__ import annotations

import io
import uuid

from sqlalchemy import select

from services.common.runtime import database
from services.documents import models
from testsupport import csrf_token


def department_id(config, firm_id, name="Fiscal") -> uuid.UUID:
    with database("documents", config).begin() as s:
        found = s.scalar(select(models.Department.id).where(models.Department.firm_id == firm_id,
                                                            models.Department.name == name))
        assert found is not None, name
        return found


def folder_url(w, company_id, department) -> str:
    return f"/documentos/e/{w.beta.slug}/empresas/{company_id}/{department}/"


def documents(config, **where) -> list[models.Document]:
    with database("documents", config).begin() as s:
        query = select(models.Document).order_by(models.Document.created_at, models.Document.name)
        for column, value in where.items():
            query = query.where(getattr(models.Document, column) == value)
        found = list(s.scalars(query))
        s.expunge_all()
        return found


def upload(client, page_url: str, action_url: str, files: list[tuple[str, bytes]], *, xhr: bool = False, **fields):
    """Post an upload form: the CSRF token from `page_url`, then `files` and `fields` to
    `action_url` — every file in one request, like a browser without JavaScript, or (`xhr`) as
    documents.js sends each one."""
    page = client.get(page_url)
    assert page.status_code == 200, page.status_code
    data = {"csrf_token": csrf_token(page.text), **fields,
            "arquivos": [(io.BytesIO(content), name) for name, content in files]}
    headers = {"X-Requested-With": "XMLHttpRequest"} if xhr else {}
    return client.post(action_url, data=data, content_type="multipart/form-data", headers=headers)
