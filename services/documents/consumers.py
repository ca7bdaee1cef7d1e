"""Event handlers of the documents service (one per event type it consumes) and its periodic jobs.
Each handler only calls a projection function; the messaging plumbing (validation, once-only
effect, retries) is common."""
from __future__ import annotations

from services.common.runtime import database

from . import projection, services
from .vault import vault_from_config


def on_firm_profile_changed(payload, ctx):
    projection.apply_firm_profile(ctx.session, payload)


def on_company_changed(payload, ctx):
    projection.apply_company(ctx.session, payload)


def on_department_changed(payload, ctx):
    projection.apply_department(ctx.session, payload)


def on_department_removed(payload, ctx):
    projection.remove_department(ctx.session, payload)


def on_client_user_access_changed(payload, ctx):
    projection.apply_client_access(ctx.session, payload)


def on_staff_member_changed(payload, ctx):
    projection.apply_staff_member(ctx.session, payload)


HANDLERS = {
    "firm.profile_changed": on_firm_profile_changed,
    "company.created": on_company_changed,
    "company.changed": on_company_changed,
    "company.deactivated": on_company_changed,
    "company.reactivated": on_company_changed,
    "department.created": on_department_changed,
    "department.renamed": on_department_changed,
    "department.removed": on_department_removed,
    "client_user.access_changed": on_client_user_access_changed,
    "staff_member.changed": on_staff_member_changed,
}

def sweep_orphans(config) -> None:
    """Objects no document references (an upload whose record never committed) go, after an hour."""
    with database("documents", config).begin() as session:
        services.sweep_orphans(session, vault_from_config(config))


# Run by every documents worker (idempotent: two workers at once delete the same orphans).
PERIODIC = {"documents.sweep_orphans": (3600.0, sweep_orphans)}
