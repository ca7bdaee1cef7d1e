"""Behind the gateway (BALCAO_TRUSTED_PROXIES=1) the client's IP comes from X-Forwarded-For, so
rate limits count per client; without a trusted proxy the header is ignored (anyone can send it)."""
import dataclasses

from sqlalchemy import select

from services.auth.models import AuthSession
from testsupport import csrf_token

from .conftest import CARLOS, login, new_browser


def _reset_requests(client, forwarded_for):
    html = client.get("/auth/esqueci-senha").get_data(as_text=True)
    return client.post("/auth/esqueci-senha", data={"csrf_token": csrf_token(html), "email": "x@exemplo.com.br"},
                       headers={"X-Forwarded-For": forwarded_for}).status_code


def test_behind_one_trusted_proxy_limits_count_per_forwarded_client(config, clock):
    client, _apps = new_browser(dataclasses.replace(config, trusted_proxies=1), ip="10.0.0.2")
    assert [_reset_requests(client, "203.0.113.1") for _i in range(6)] == [200] * 5 + [429]
    assert _reset_requests(client, "203.0.113.2") == 200  # another client behind the same gateway
    # only the last hop is trusted: a client cannot pick its address by prepending one
    assert _reset_requests(client, "203.0.113.2, 203.0.113.1") == 429


def test_without_trusted_proxies_the_header_is_ignored(config, clock):
    client, _apps = new_browser(config, ip="10.0.0.3")
    assert [_reset_requests(client, f"203.0.113.{n}") for n in range(1, 7)] == [200] * 5 + [429]


def test_sessions_record_the_forwarded_client_ip(config, make_identity, auth_db):
    make_identity()
    client, _apps = new_browser(dataclasses.replace(config, trusted_proxies=1), ip="10.0.0.2")
    page = client.get("/auth/entrar").get_data(as_text=True)
    client.post("/auth/entrar", data={"csrf_token": csrf_token(page), "email": CARLOS["email"],
                                      "password": CARLOS["password"]}, headers={"X-Forwarded-For": "198.51.100.9"})
    plain, _apps = new_browser(config, ip="10.0.0.4")
    login(plain, email=CARLOS["email"], password=CARLOS["password"])
    with auth_db.begin() as s:
        assert sorted(s.scalars(select(AuthSession.ip))) == ["10.0.0.4", "198.51.100.9"]
