"""The event chain seen from the users service: the invitation it asked for is created and
delivered, and the staff page shows it (events carried in-process by `bus`)."""
import re
import uuid

from services.users.tests.conftest import get_client_user, login, outbox_events
from testsupport import csrf_token


def test_envie_agora_ends_with_the_invitation_sent(browser_client, bus, config, world):
    bus.pump()  # the world's own events
    login(browser_client, config, world.ana)
    new = f"/e/{world.alfa.slug}/configuracoes/usuarios-de-clientes/novo"
    token = csrf_token(browser_client.get(new).get_data(as_text=True))
    response = browser_client.post(new, data={"csrf_token": token, "step": "notificacoes", "name": "Diana Prado",
                                              "email": "diana@example.com", "access": "now"})
    detail = response.headers["Location"]
    assert "Aguardando envio" in browser_client.get(detail).get_data(as_text=True)
    bus.pump()
    client_user_id = uuid.UUID(detail.rsplit("/", 1)[1])
    cu = get_client_user(config, client_user_id)
    assert cu.invitation_id is not None and cu.invitation_expires_at is not None
    html = browser_client.get(detail).get_data(as_text=True)
    assert re.search(r"Convite enviado em \d\d/\d\d/\d{4} \d\d:\d\d", html), html
    # no secret crossed in what users published
    for event in outbox_events(config):
        assert "token" not in str(event["payload"]).lower() and "senha" not in str(event["payload"]).lower()
