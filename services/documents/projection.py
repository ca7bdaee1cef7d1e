"""The documents service's projection of the users service: every write made from one of its
events (firms, companies, departments, client users and staff members). The consumers call these;
nothing here commits (the consumer's transaction does, with the message marked processed)."""
from __future__ import annotations

import uuid

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from services.common.contracts import as_uuid

from .models import Company, Department, Document, Firm, Folder, Member, MemberCompany, MemberDepartment


def apply_firm_profile(session: Session, payload: dict) -> None:
    """firm.profile_changed: the highest revision wins (an older event arriving late changes nothing)."""
    firm = session.get(Firm, as_uuid(payload["firm_id"]), with_for_update=True)
    if firm is None:
        firm = Firm(id=as_uuid(payload["firm_id"]), revision=0, name=payload["name"])
        session.add(firm)
    if payload["revision"] < firm.revision:
        return
    firm.revision, firm.name = payload["revision"], payload["name"]
    if payload.get("slug"):
        firm.slug = payload["slug"]
    session.flush()


def apply_company(session: Session, payload: dict) -> None:
    """company.created / changed / deactivated / reactivated: the company as it now is."""
    company = session.get(Company, as_uuid(payload["company_id"]))
    if company is None:
        company = Company(id=as_uuid(payload["company_id"]), firm_id=as_uuid(payload["firm_id"]))
        session.add(company)
    elif company.firm_id != as_uuid(payload["firm_id"]):
        raise ValueError("a company cannot move to another firm")
    company.legal_name, company.trade_name = payload["legal_name"], payload.get("trade_name")
    company.document_kind, company.document = payload["document_kind"], payload["document"]
    company.active = payload["active"]
    session.flush()


def apply_department(session: Session, payload: dict) -> None:
    """department.created / renamed."""
    department = session.get(Department, as_uuid(payload["department_id"]))
    if department is None:
        department = Department(id=as_uuid(payload["department_id"]), firm_id=as_uuid(payload["firm_id"]))
        session.add(department)
    elif department.firm_id != as_uuid(payload["firm_id"]):
        raise ValueError("a department cannot move to another firm")
    department.name, department.position, department.removed = payload["name"], payload["position"], False
    session.flush()


def remove_department(session: Session, payload: dict) -> None:
    """department.removed: its documents and folders move to `moved_to_id` (as the users service
    moved the people's access there); the department is kept, marked removed."""
    firm_id, gone, target = as_uuid(payload["firm_id"]), as_uuid(payload["department_id"]), as_uuid(payload["moved_to_id"])
    department = session.get(Department, gone)
    if department is None:
        department = Department(id=gone, firm_id=firm_id, name="", position=0)
        session.add(department)
    department.removed = True
    for table in (Document, Folder):
        session.execute(update(table).where(table.firm_id == firm_id, table.department_id == gone)
                        .values(department_id=target).execution_options(synchronize_session=False))
    session.execute(delete(MemberDepartment).where(MemberDepartment.department_id == gone))
    session.flush()


def _member(session: Session, member_id: uuid.UUID, firm_id: uuid.UUID, role: str) -> tuple[Member, bool]:
    """The member (locked), made when the first event about them arrives; and whether it was."""
    member = session.get(Member, member_id, with_for_update=True)
    if member is None:
        member = Member(id=member_id, firm_id=firm_id, role=role, status="invited", revision=0)
        session.add(member)
        return member, True
    if member.firm_id != firm_id:
        raise ValueError("a member cannot move to another firm")
    return member, False


def _replace_links(session: Session, member: Member, *, company_ids, departments: dict, new: bool) -> None:
    """The member's companies and departments become these: the old ones deleted (none to delete for
    a member just made), the new ones inserted in one statement each, without ORM objects (issue 11:
    every imported client user comes through here, twice)."""
    if not new:
        session.execute(delete(MemberCompany).where(MemberCompany.member_id == member.id))
        session.execute(delete(MemberDepartment).where(MemberDepartment.member_id == member.id))
    companies = [{"member_id": member.id, "company_id": cid} for cid in {as_uuid(c) for c in company_ids}]
    if companies:
        session.execute(insert(MemberCompany), companies)
    links = [{"member_id": member.id, "department_id": as_uuid(did), "level": level} for did, level in departments.items()]
    if links:
        session.execute(insert(MemberDepartment), links)


def apply_client_access(session: Session, payload: dict) -> None:
    """client_user.access_changed: the client user's access whole; the highest revision wins. An
    older producer (minor 0) sends no status: a user with a login is then taken as active."""
    member, new = _member(session, as_uuid(payload["client_user_id"]), as_uuid(payload["firm_id"]), "client")
    if payload["revision"] <= member.revision:
        return
    member.revision = payload["revision"]
    member.identity_id = as_uuid(payload["identity_id"]) if payload.get("identity_id") else None
    member.status = payload.get("status") or ("active" if member.identity_id else "invited")
    if payload.get("name"):
        member.name = payload["name"]
    if payload.get("email"):
        member.email = payload["email"]
    member.can_upload = bool(payload["permissions"].get("upload"))
    member.can_download = bool(payload["permissions"].get("download"))
    member.notifications = dict(payload["notifications"])
    session.flush()
    _replace_links(session, member, company_ids=payload["company_ids"],
                   departments={d["department_id"]: d["level"] for d in payload["departments"]}, new=new)


def apply_staff_member(session: Session, payload: dict) -> None:
    """staff_member.changed: the member as they now are (the queue delivers one member's events in
    the order they were recorded)."""
    member, new = _member(session, as_uuid(payload["staff_member_id"]), as_uuid(payload["firm_id"]), payload["role"])
    member.role, member.status = payload["role"], payload["status"]
    member.identity_id = as_uuid(payload["identity_id"]) if payload.get("identity_id") else None
    if payload.get("name"):
        member.name = payload["name"]
    if payload.get("email"):
        member.email = payload["email"]
    session.flush()
    _replace_links(session, member, company_ids=payload["company_ids"],
                   departments={did: None for did in payload["department_ids"]}, new=new)


def firm_by_slug(session: Session, slug: str) -> Firm | None:
    return session.scalar(select(Firm).where(Firm.slug == slug))
