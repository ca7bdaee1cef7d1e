"""The "Sua conta foi vinculada a …" notice (membership.granted) and the "Não fui eu" page."""
import uuid
from urllib.parse import urlsplit

from services.auth import consumers, models
from services.common.events import make_envelope
from services.common.messaging import handle_message

from .conftest import CARLOS, location_path, login, new_browser, post_form


def test_a_client_link_sends_the_firm_linked_notice(config, auth_db, make_identity, outbox_events, keyring):
    carlos = make_identity()
    envelope = make_envelope("membership.granted", {"firm_id": str(uuid.uuid4()), "firm_name": "Beta Contadores",
                                                    "identity_id": str(carlos.id), "role": "client"},
                             correlation_id="test")
    for _i in range(2):  # redelivered: one e-mail
        handle_message(auth_db, models.processed, "auth", consumers.on_membership_granted, envelope, config=config)
    (mail,) = outbox_events("notification.email_requested")
    payload = mail["payload"]
    assert payload["template"] == "firm_linked" and payload["recipient"] == CARLOS["email"]
    assert payload["context"]["firm_name"] == "Beta Contadores" and payload["context"]["name"] == CARLOS["name"]
    assert "linked_at" in payload["context"]
    assert keyring.unseal(payload["sealed"]) == {"link": "http://balcao.test/auth/minha-conta/nao-fui-eu"}


def test_staff_memberships_send_nothing(config, auth_db, make_identity, outbox_events):
    carlos = make_identity()
    envelope = make_envelope("membership.granted", {"firm_id": str(uuid.uuid4()), "firm_name": "Beta Contadores",
                                                    "identity_id": str(carlos.id), "role": "staff"},
                             correlation_id="test")
    handle_message(auth_db, models.processed, "auth", consumers.on_membership_granted, envelope, config=config)
    assert outbox_events("notification.email_requested") == []


def test_not_me_page_explains_and_ends_everything(config, make_identity, outbox_events, keyring):
    make_identity()
    anonymous, _apps = new_browser(config)
    page = anonymous.get("/auth/minha-conta/nao-fui-eu")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Não fui eu" in html and "Redefinir a senha" in html
    assert page.headers["Referrer-Policy"] == "no-referrer"

    other, _apps = new_browser(config)
    login(other, email=CARLOS["email"], password=CARLOS["password"])
    client, _apps = new_browser(config)
    login(client, email=CARLOS["email"], password=CARLOS["password"])
    response = post_form(client, "/auth/minha-conta/nao-fui-eu", "/auth/minha-conta/nao-fui-eu", {})
    assert response.status_code == 200 and "Todas as sessões foram encerradas" in response.get_data(as_text=True)
    for browser in (client, other):
        assert location_path(browser.get("/auth/sessao/renovar?next=/")).startswith("/auth/entrar")
    (mail,) = outbox_events("notification.email_requested")
    assert mail["payload"]["template"] == "password_reset"
    assert urlsplit(keyring.unseal(mail["payload"]["sealed"])["link"]).path.startswith("/auth/redefinir-senha/")
