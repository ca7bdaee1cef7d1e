"""Service functions and event handlers: statuses and the events they emit."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.common.events import make_envelope
from services.common.messaging import Outcome, handle_message
from services.users import consumers, models, services
from services.users.tests.conftest import get_client_user, link_client, make_cnpj, outbox_events, users_db


@pytest.fixture
def alfa(config):
    with users_db(config).begin() as s:
        firm = services.create_firm(s, name="Contabilidade Alfa", cnpj=make_cnpj(1), admin_identity_id=uuid.uuid4(),
                                    admin_name="Ana Lima", admin_email="ana@alfa.com.br")
        services.create_company(s, firm=firm, name="Padaria Pão Quente Ltda", cnpj=make_cnpj(3))
    return firm


def _register(config, firm, access, email="carlos@example.com", **kw):
    with users_db(config).begin() as s:
        return services.register_client_user(s, firm=firm, name="Carlos Souza", email=email, access=access, **kw)


def _apply(config, fn, cu_id, firm):
    with users_db(config).begin() as s:
        cu = s.get(models.ClientUser, cu_id)
        return fn(s, firm=firm, client_user=cu)


def test_create_firm_grants_the_admin_membership(config, alfa):
    [granted] = outbox_events(config, "membership.granted")
    assert granted["payload"]["firm_id"] == str(alfa.id)
    assert granted["payload"]["role"] == "admin"


@pytest.mark.parametrize("access,status,send_now", [("now", "invited", True), ("later", "not_invited", False)])
def test_activating_access_emits_access_activated(config, alfa, access, status, send_now):
    cu = _register(config, alfa, access)
    assert cu.status == status
    [event] = outbox_events(config, "client_user.access_activated")
    assert event["payload"] == {"firm_id": str(alfa.id), "firm_name": "Contabilidade Alfa",
                                "firm_slug": alfa.slug, "client_user_id": str(cu.id),
                                "email": "carlos@example.com", "name": "Carlos Souza", "send_now": send_now,
                                "subject": "client_user"}


def test_registering_without_access_emits_nothing(config, alfa):
    cu = _register(config, alfa, None)
    assert cu.status == "not_invited"
    assert outbox_events(config, "client_user.access_activated") == []


def test_only_companies_of_the_firm_are_accepted(config, alfa):
    with users_db(config).begin() as s:
        beta = services.create_firm(s, name="Contabilidade Beta", cnpj=make_cnpj(2), admin_identity_id=uuid.uuid4(),
                                    admin_name="Bruno Reis", admin_email="bruno@beta.com.br")
        beta_company = services.create_company(s, firm=beta, name="Oficina", cnpj=make_cnpj(9))
    with pytest.raises(services.ClientUserError, match="Empresa inválida."):
        _register(config, alfa, None, company_ids=[beta_company.id])


def test_resend_invitation(config, alfa):
    cu = _register(config, alfa, "later")
    _apply(config, services.resend_invitation, cu.id, alfa)
    assert get_client_user(config, cu.id).status == "invited"
    [event] = outbox_events(config, "client_user.invitation_requested")
    assert event["payload"]["client_user_id"] == str(cu.id)
    assert event["payload"]["email"] == "carlos@example.com"


def test_deactivating_an_active_user_revokes_access_and_membership(config, alfa):
    cu = _register(config, alfa, "now")
    identity_id = uuid.uuid4()
    link_client(config, firm_id=alfa.id, client_user_id=cu.id, identity_id=identity_id)
    _apply(config, services.deactivate_client_user, cu.id, alfa)
    assert get_client_user(config, cu.id).status == "inactive"
    [revoked] = outbox_events(config, "client_user.access_revoked")
    assert revoked["payload"] == {"firm_id": str(alfa.id), "client_user_id": str(cu.id), "reason": "deactivated",
                                  "subject": "client_user"}
    [membership] = outbox_events(config, "membership.revoked")
    assert membership["payload"] == {"firm_id": str(alfa.id), "identity_id": str(identity_id),
                                     "reason": "deactivated", "role": "client"}


def test_deactivating_an_invited_user_has_no_membership_to_revoke(config, alfa):
    cu = _register(config, alfa, "now")
    _apply(config, services.deactivate_client_user, cu.id, alfa)
    assert len(outbox_events(config, "client_user.access_revoked")) == 1
    assert outbox_events(config, "membership.revoked") == []


def test_delete_keeps_the_row_and_clears_the_identity(config, alfa):
    cu = _register(config, alfa, "now")
    link_client(config, firm_id=alfa.id, client_user_id=cu.id, identity_id=uuid.uuid4())
    _apply(config, services.delete_client_user, cu.id, alfa)
    deleted = get_client_user(config, cu.id)
    assert deleted.status == "deleted" and deleted.identity_id is None
    assert outbox_events(config, "client_user.access_revoked")[0]["payload"]["reason"] == "deleted"
    assert outbox_events(config, "membership.revoked")[0]["payload"]["reason"] == "deleted"
    with pytest.raises(services.ClientUserError):
        _apply(config, services.delete_client_user, cu.id, alfa)


def test_reactivating_a_deleted_user_sends_a_new_invitation(config, alfa):
    cu = _register(config, alfa, "now")
    link_client(config, firm_id=alfa.id, client_user_id=cu.id, identity_id=uuid.uuid4())
    _apply(config, services.delete_client_user, cu.id, alfa)
    _apply(config, services.reactivate_client_user, cu.id, alfa)
    again = get_client_user(config, cu.id)
    assert again.status == "invited" and again.identity_id is None
    activated = outbox_events(config, "client_user.access_activated")
    assert len(activated) == 2 and activated[-1]["payload"]["send_now"] is True


def test_reactivation_is_refused_when_the_email_is_in_use_again(config, alfa):
    cu = _register(config, alfa, "now")
    _apply(config, services.delete_client_user, cu.id, alfa)
    _register(config, alfa, None)
    with pytest.raises(services.ClientUserError, match="Já existe um usuário com este e-mail"):
        _apply(config, services.reactivate_client_user, cu.id, alfa)
    assert get_client_user(config, cu.id).status == "deleted"


def test_changing_the_email_of_a_pending_invitation_requests_a_new_one(config, alfa):
    cu = _register(config, alfa, "now")
    with users_db(config).begin() as s:
        target = s.get(models.ClientUser, cu.id)
        services.update_client_user(s, firm=alfa, client_user=target, name="Carlos Souza",
                                    email="carlos.novo@example.com", cpf=None, phone=None, company_ids=[])
    [event] = outbox_events(config, "client_user.invitation_requested")
    assert event["payload"]["email"] == "carlos.novo@example.com"


def test_an_active_users_email_cannot_change(config, alfa):
    cu = _register(config, alfa, "now")
    link_client(config, firm_id=alfa.id, client_user_id=cu.id, identity_id=uuid.uuid4())
    with pytest.raises(services.ClientUserError, match="Não é possível alterar o e-mail"):
        with users_db(config).begin() as s:
            target = s.get(models.ClientUser, cu.id)
            services.update_client_user(s, firm=alfa, client_user=target, name="Carlos Souza",
                                        email="outro@example.com", cpf=None, phone=None, company_ids=[])
    assert get_client_user(config, cu.id).email == "carlos@example.com"


def _deliver(config, event_type, payload):
    envelope = make_envelope(event_type, payload, correlation_id="test")
    outcome, _info = handle_message(users_db(config), models.processed, "users", consumers.HANDLERS[event_type],
                                    envelope, config=config)
    return envelope, outcome


def _created(config, firm, cu, *, days=7):
    invitation_id = uuid.uuid4()
    _deliver(config, "invitation.created", {
        "invitation_id": str(invitation_id), "firm_id": str(firm.id), "client_user_id": str(cu.id),
        "expires_at": (datetime.now(UTC) + timedelta(days=days)).isoformat(), "resent": False})
    return invitation_id


def _accepted(config, firm, cu, invitation_id, identity_id):
    return _deliver(config, "invitation.accepted", {
        "invitation_id": str(invitation_id), "firm_id": str(firm.id), "client_user_id": str(cu.id),
        "identity_id": str(identity_id)})


def test_invitation_accepted_grants_the_membership_once(config, alfa):
    cu = _register(config, alfa, "now")
    invitation_id = _created(config, alfa, cu)
    identity_id = uuid.uuid4()
    envelope, outcome = _accepted(config, alfa, cu, invitation_id, identity_id)
    assert outcome == Outcome.HANDLED
    # the same message again (redelivery) and a second message for the same acceptance
    assert handle_message(users_db(config), models.processed, "users", consumers.HANDLERS["invitation.accepted"],
                          envelope, config=config)[0] == Outcome.DUPLICATE
    _accepted(config, alfa, cu, invitation_id, identity_id)
    active = get_client_user(config, cu.id)
    assert active.status == "active" and active.identity_id == identity_id
    granted = [e for e in outbox_events(config, "membership.granted") if e["payload"]["role"] == "client"]
    assert len(granted) == 1
    assert granted[0]["payload"] == {"firm_id": str(alfa.id), "firm_name": "Contabilidade Alfa",
                                     "identity_id": str(identity_id), "role": "client"}


def test_grant_membership_is_refused_for_an_inactive_user(config, alfa):
    cu = _register(config, alfa, "now")
    invitation_id = _created(config, alfa, cu)
    _apply(config, services.deactivate_client_user, cu.id, alfa)
    _accepted(config, alfa, cu, invitation_id, uuid.uuid4())
    inactive = get_client_user(config, cu.id)
    assert inactive.status == "inactive" and inactive.identity_id is None
    assert [e for e in outbox_events(config, "membership.granted") if e["payload"]["role"] == "client"] == []


def test_only_the_latest_invitation_grants(config, alfa):
    cu = _register(config, alfa, "now")
    old = _created(config, alfa, cu, days=7)
    new = _created(config, alfa, cu, days=8)
    _accepted(config, alfa, cu, old, uuid.uuid4())
    assert get_client_user(config, cu.id).status == "invited"
    _accepted(config, alfa, cu, new, uuid.uuid4())
    assert get_client_user(config, cu.id).status == "active"


def test_delivery_reports_are_recorded_on_the_latest_invitation(config, alfa):
    cu = _register(config, alfa, "now")
    invitation_id = _created(config, alfa, cu)
    _deliver(config, "notification.failed", {"idempotency_key": "k1", "reference": f"invitation:{invitation_id}",
                                             "error": "caixa postal cheia", "permanent": False,
                                             "failed_at": datetime.now(UTC).isoformat()})
    assert get_client_user(config, cu.id).delivery_error == "caixa postal cheia"
    sent_at = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)
    _deliver(config, "notification.sent", {"idempotency_key": "k1", "reference": f"invitation:{invitation_id}",
                                           "message_id": "<m1@x>", "sent_at": sent_at.isoformat()})
    delivered = get_client_user(config, cu.id)
    assert delivered.delivery_error is None and delivered.invitation_sent_at == sent_at
    # a password-reset e-mail's report is not ours
    _envelope, outcome = _deliver(config, "notification.sent", {
        "idempotency_key": "k2", "reference": "password_reset:1", "message_id": "<m2@x>",
        "sent_at": sent_at.isoformat()})
    assert outcome == Outcome.HANDLED


def test_refused_link_is_recorded(config, alfa):
    cu = _register(config, alfa, "now")
    invitation_id = _created(config, alfa, cu)
    _deliver(config, "invitation.acceptance_refused", {
        "invitation_id": str(invitation_id), "firm_id": str(alfa.id), "client_user_id": str(cu.id),
        "identity_id": str(uuid.uuid4()), "reason": "expired"})
    assert get_client_user(config, cu.id).link_refused_reason == "expired"
    with users_db(config).begin() as s:
        assert s.get(models.InvitationRef, invitation_id).refused_reason == "expired"
