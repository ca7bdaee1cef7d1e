"""What staff see of an invitation: its state in plain pt-BR (list and user's page), the
copyable link, the resend cooldown, and double submits of the same link producing one
membership."""
from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.common.events import make_envelope
from services.common.keys import KeyRing
from services.common.messaging import Outcome, handle_message
from services.common.runtime import database, service_module
from services.users import models, services
from services.users.tests.conftest import (
    get_client_user,
    login,
    main_html,
    outbox_events,
    text_of,
    users_db,
)
from testsupport import count_queries, csrf_token

LIST = "/e/{slug}/configuracoes/usuarios-de-clientes"


def _url(firm, suffix=""):
    return LIST.format(slug=firm.slug) + suffix


def _page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.get_data(as_text=True)


def _post(client, url, data=None, *, page_url=None):
    html = _page(client, page_url or url)
    return client.post(url, data={"csrf_token": csrf_token(html), **(data or {})})


def _register(config, firm, *, name="Helena Dias", email="helena@example.com", access="now"):
    with users_db(config).begin() as s:
        return services.register_client_user(s, firm=firm, name=name, email=email, access=access)


def _created(config, firm, cu, *, expires_at=None, sealed_link=None) -> uuid.UUID:
    invitation_id = uuid.uuid4()
    with users_db(config).begin() as s:
        services.record_invitation_created(s, invitation_id=invitation_id, firm_id=firm.id, client_user_id=cu.id,
                                           expires_at=expires_at or datetime.now(UTC) + timedelta(days=7),
                                           sealed_link=sealed_link)
    return invitation_id


def _deliver_users(config, event_type, payload):
    envelope = make_envelope(event_type, payload, correlation_id="t")
    handler = service_module("users", "consumers").HANDLERS[event_type]
    return handle_message(users_db(config), models.processed, "users", handler, envelope, config=config)


def _state(client, url) -> str:
    """The user's page, or the list's rows (not its Situação filter, which names every state)."""
    main = main_html(_page(client, url))
    rows = re.search(r"<tbody>.*?</tbody>", main, re.S)
    return text_of(rows.group(0) if rows else main)


def test_every_state_in_plain_portuguese_in_the_list_and_on_the_page(browser_client, config, world):
    cu = _register(config, world.alfa)
    login(browser_client, config, world.ana)
    detail, listing = _url(world.alfa, f"/{cu.id}"), _url(world.alfa)
    assert "Aguardando envio" in _state(browser_client, detail) and "Aguardando envio" in _state(browser_client, listing)
    inv = _created(config, world.alfa, cu)
    ref = f"invitation:{inv}"
    now = datetime.now(UTC)
    # a temporary failure: the notifier retries by itself, and staff are told so
    _deliver_users(config, "notification.failed", {"idempotency_key": ref, "reference": ref, "permanent": False,
                                                    "error": "Servidor de e-mail indisponível", "failed_at": now})
    for url in (detail, listing):
        assert "Falha no envio: Servidor de e-mail indisponível — nova tentativa automática" in _state(browser_client, url)
    # the retry succeeded: back to sent
    _deliver_users(config, "notification.sent", {"idempotency_key": ref, "reference": ref, "message_id": "<m@x>",
                                                  "sent_at": datetime(2026, 3, 4, 15, 30, tzinfo=UTC)})
    for url in (detail, listing):
        page = _state(browser_client, url)
        assert "Convite enviado em 04/03/2026 12:30" in page and "Falha no envio" not in page
    # a late report of an earlier failed attempt changes nothing
    _deliver_users(config, "notification.failed", {"idempotency_key": ref, "reference": ref, "permanent": False,
                                                    "error": "timeout", "failed_at": now})
    assert "Convite enviado em 04/03/2026 12:30" in _state(browser_client, detail)
    # a permanent failure of a new invitation: no automatic retry is promised
    inv2 = _created(config, world.alfa, cu, expires_at=datetime.now(UTC) + timedelta(days=8))
    ref2 = f"invitation:{inv2}"
    _deliver_users(config, "notification.failed", {"idempotency_key": ref2, "reference": ref2, "permanent": True,
                                                    "error": "550 caixa inexistente", "failed_at": now})
    page = _state(browser_client, detail)
    assert "Falha no envio: 550 caixa inexistente" in page and "nova tentativa automática" not in page
    # expired
    with users_db(config).begin() as s:
        s.get(models.ClientUser, cu.id).invitation_expires_at = datetime(2026, 1, 2, 13, 0, tzinfo=UTC)
    for url in (detail, listing):
        assert "Convite expirado em 02/01/2026 10:00" in _state(browser_client, url)
    # active
    assert "Acesso ativo" in _state(browser_client, _url(world.alfa, f"/{world.carlos_at_alfa.id}"))


def test_list_with_states_keeps_a_fixed_number_of_queries(browser_client, config, world):
    login(browser_client, config, world.ana)
    _page(browser_client, _url(world.alfa))
    with count_queries(config, "users") as few:
        _page(browser_client, _url(world.alfa))
    for n in range(12):
        cu = _register(config, world.alfa, name=f"Pessoa Numero{n}", email=f"p{n}@example.com")
        inv = _created(config, world.alfa, cu)
        with users_db(config).begin() as s:
            services.record_delivery(s, reference=f"invitation:{inv}", error="x", permanent=n % 2 == 0)
    with count_queries(config, "users") as many:
        html = _page(browser_client, _url(world.alfa))
    rows = re.search(r"<tbody>.*?</tbody>", html, re.S)
    assert rows and rows.group(0).count("Falha no envio") == 12
    assert many.count == few.count


def _chain_invite(browser_client, config, bus, world, email="diana@example.com"):
    bus.pump()
    cu = _register(config, world.alfa, name="Diana Prado", email=email)
    bus.pump()
    return get_client_user(config, cu.id)


def _notifier_link(config, invitation_id) -> str:
    inv_models = service_module("invitations", "models")
    with database("invitations", config).begin() as s:
        rows = s.execute(select(inv_models.outbox.c.envelope)).scalars().all()
    [req] = [e for e in rows if e["type"] == "notification.email_requested"
             and e["payload"]["reference"] == f"invitation:{invitation_id}"]
    return KeyRing(config.keys_dir).unseal(req["payload"]["sealed"])["link"]


def test_staff_copy_the_link_of_the_pending_invitation(browser_client, config, bus, world):
    cu = _chain_invite(browser_client, config, bus, world)
    login(browser_client, config, world.ana)
    html = _page(browser_client, _url(world.alfa, f"/{cu.id}"))
    match = re.search(r'<input id="invite-link" type="text" readonly value="([^"]+)"', html)
    assert match, html
    link = match.group(1)
    # the invitation's copy link, not the one e-mailed to the person
    assert link.startswith(f"{config.public_url}/convite/") and link != _notifier_link(config, cu.invitation_id)
    assert f'data-copy="{link}"' in html and "Copiar link do convite" in html
    assert "o usuário confirma o e-mail com um código que enviamos para ele" in html
    # the link opens the invitation (→ auth, which first asks for a code sent to the e-mail)
    response = browser_client.get(link.replace(config.public_url, ""))
    assert response.status_code == 303 and "/auth/convite?ticket=" in response.headers["Location"]
    page = browser_client.get(response.headers["Location"])
    assert page.status_code == 200 and "Confirme seu e-mail" in page.get_data(as_text=True)
    # it is stored only sealed: no raw link or token in any users table
    token = link.rsplit("/", 1)[1]
    with users_db(config).begin() as s:
        for table in models.metadata.sorted_tables:
            for row in s.execute(select(table)).all():
                assert token not in json.dumps([str(v) for v in row]), table.name
    # other firm's staff: 404, like a missing user
    login(browser_client, config, world.bruno)
    _page(browser_client, _url(world.alfa, f"/{cu.id}"), status=404)
    _page(browser_client, _url(world.beta, f"/{cu.id}"), status=404)


def test_no_link_to_copy_once_active_or_expired(browser_client, config, bus, world):
    cu = _chain_invite(browser_client, config, bus, world)
    login(browser_client, config, world.ana)
    url = _url(world.alfa, f"/{cu.id}")
    assert 'id="invite-link"' in _page(browser_client, url)
    with users_db(config).begin() as s:
        s.get(models.ClientUser, cu.id).invitation_expires_at = datetime.now(UTC) - timedelta(minutes=1)
    html = _page(browser_client, url)
    assert 'id="invite-link"' not in html and "Copiar link do convite" not in html
    assert 'id="invite-link"' not in _page(browser_client, _url(world.alfa, f"/{world.carlos_at_alfa.id}"))


def test_resend_within_the_cooldown_says_when_and_emits_nothing(browser_client, config, bus, world):
    cu = _chain_invite(browser_client, config, bus, world)
    login(browser_client, config, world.ana)
    url = _url(world.alfa, f"/{cu.id}")
    before = len(outbox_events(config, "client_user.invitation_requested"))
    response = _post(browser_client, url + "/reenviar-convite", page_url=url)
    assert response.status_code == 303
    html = _page(browser_client, url)
    assert re.search(r"O convite acabou de ser enviado\. Você poderá reenviá-lo em \d+ segundos\.", html), html
    assert len(outbox_events(config, "client_user.invitation_requested")) == before
    # after the cooldown the resend goes out, and a new invitation replaces the old link
    with users_db(config).begin() as s:
        s.get(models.ClientUser, cu.id).invitation_requested_at = datetime.now(UTC) - timedelta(seconds=61)
    old_link = re.search(r'id="invite-link" type="text" readonly value="([^"]+)"', html).group(1)
    _post(browser_client, url + "/reenviar-convite", page_url=url)
    assert "O convite foi reenviado para diana@example.com." in _page(browser_client, url)
    assert len(outbox_events(config, "client_user.invitation_requested")) == before + 1
    # and a second click right after is refused again
    _post(browser_client, url + "/reenviar-convite", page_url=url)
    assert "Você poderá reenviá-lo em" in _page(browser_client, url)
    assert len(outbox_events(config, "client_user.invitation_requested")) == before + 1
    bus.pump()
    html = _page(browser_client, url)
    new_link = re.search(r'id="invite-link" type="text" readonly value="([^"]+)"', html).group(1)
    assert new_link != old_link
    assert browser_client.get(old_link.replace(config.public_url, "")).status_code == 404


def test_resend_cooldown_is_a_service_rule():
    cu = models.ClientUser(id=uuid.uuid4(), firm_id=uuid.uuid4(), status="invited", name="A B", email="a@b.co",
                           invitation_requested_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    firm = models.Firm(id=cu.firm_id, name="F", slug="f", cnpj="1")

    class Session:
        def flush(self):
            pass

        def execute(self, *_a, **_k):
            pass

    try:
        services.resend_invitation(Session(), firm=firm, client_user=cu,
                                   now=datetime(2026, 1, 1, 12, 0, 45, tzinfo=UTC))
    except services.ResendTooSoon as exc:
        assert exc.available_at == datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
        assert "15 segundos" in exc.message
    else:
        raise AssertionError("resend within the cooldown was accepted")


def _link_verified(config, invitation_id, identity_id, email):
    """One link.verified as auth publishes it, delivered to invitations like the broker does."""
    envelope = make_envelope("link.verified", {"invitation_id": invitation_id, "identity_id": identity_id,
                                               "email": email}, correlation_id=uuid.uuid4().hex)
    inv_models = service_module("invitations", "models")
    handler = service_module("invitations", "consumers").HANDLERS["link.verified"]
    outcome, _env = handle_message(database("invitations", config), inv_models.processed, "invitations", handler,
                                   envelope, config=config)
    return outcome


def test_two_tabs_verifying_the_same_link_make_one_membership(browser_client, config, bus, world):
    cu = _chain_invite(browser_client, config, bus, world)
    identity_id = uuid.uuid4()
    # two tabs: two distinct link.verified messages (different ids) for the same invitation
    assert _link_verified(config, cu.invitation_id, identity_id, "diana@example.com") == Outcome.HANDLED
    assert _link_verified(config, cu.invitation_id, identity_id, "diana@example.com") == Outcome.HANDLED
    delivered = bus.pump()
    assert [e["type"] for e in delivered].count("invitation.accepted") == 1
    assert [e["type"] for e in delivered].count("membership.granted") == 1
    cu = get_client_user(config, cu.id)
    assert cu.status == "active" and cu.identity_id == identity_id


def test_the_same_acceptance_delivered_twice_makes_one_membership(config, bus, world):
    bus.pump()
    cu = _register(config, world.alfa, name="Diana Prado", email="diana@example.com")
    bus.pump()
    cu = get_client_user(config, cu.id)
    identity_id = uuid.uuid4()
    envelope = make_envelope("invitation.accepted", {"invitation_id": cu.invitation_id, "firm_id": world.alfa.id,
                                                     "client_user_id": cu.id, "identity_id": identity_id},
                             correlation_id="t")
    handler = service_module("users", "consumers").HANDLERS["invitation.accepted"]
    first, _ = handle_message(users_db(config), models.processed, "users", handler, envelope, config=config)
    second, _ = handle_message(users_db(config), models.processed, "users", handler, envelope, config=config)
    assert (first, second) == (Outcome.HANDLED, Outcome.DUPLICATE)
    # even a redelivery with a new message id (a republished copy) grants nothing more
    copy = {**envelope, "id": str(uuid.uuid4())}
    assert handle_message(users_db(config), models.processed, "users", handler, copy, config=config)[0] == Outcome.HANDLED
    granted = [e for e in outbox_events(config, "membership.granted")
               if e["payload"]["identity_id"] == str(identity_id)]
    assert len(granted) == 1
    assert get_client_user(config, cu.id).status == "active"


def test_states_and_import_pages_in_english(browser_client, config, bus, world):
    from pathlib import Path

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    po = Path(__file__).parents[1] / "translations" / "en" / "LC_MESSAGES" / "messages.po"
    mo = po.with_suffix(".mo")
    if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:  # `make translations` builds it too
        with po.open("rb") as src, mo.open("wb") as dst:
            write_mo(dst, read_po(src))
    cu = _chain_invite(browser_client, config, bus, world)
    login(browser_client, config, world.ana)
    browser_client.set_cookie("balcao_locale", "en")
    html = _page(browser_client, _url(world.alfa, f"/{cu.id}"))
    assert "Copy invitation link" in html and "Copiar link do convite" not in html
    assert "Import users" in _page(browser_client, _url(world.alfa))
    assert "Choose a CSV or XLSX file." not in _page(browser_client, _url(world.alfa, "/importar"))
