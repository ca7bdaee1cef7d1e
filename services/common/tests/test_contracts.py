"""The rules every service shares (services/common/contracts.py), and the redirects built on them."""
from urllib.parse import quote

import pytest

from services.common.contracts import normalize_email, safe_next, session_hash
from services.common.gateway import PREFIXES

# Targets a browser would take to another host, or that break the Location header.
HOSTILE = [
    "//evil.example/x",
    "/\t/evil.example",            # browsers drop tab/CR/LF: "//evil.example"
    "/\n/evil.example",
    "/\r/evil.example",
    "/\r\n/evil.example",
    "/\\evil.example",              # "/\" is "//" to a browser
    "\\\\evil.example",
    "/%2F/evil.example",           # decoded by a proxy or framework: "//evil.example"
    "/%5Cevil.example",
    "/%09/evil.example",
    "/%0a/x",
    "/x%0d%0aSet-Cookie:%20a=b",   # header splitting once decoded
    "https://evil.example/",
    "http:/evil.example",
    "javascript:alert(1)",
    "evil.example",
    " /x",
    "/\u3000/evil.example",        # ideographic space
    "/\uff0f/evil.example",        # fullwidth solidus
    "/\u2028/x",
    "/\x85/x",                      # C1 next line
    "/\x00/x",
    "/" + "a" * 2000,
    "",
    None,
]

SAFE = [
    "/",
    "/auth/entrar",
    "/e/contabilidade-alfa/configuracoes/usuarios-de-clientes?q=Carlos%20Pereira&pagina=2",
    "/e/alfa/?x=%C3%A9",           # non-ASCII percent-encoded
]


@pytest.mark.parametrize("target", HOSTILE, ids=repr)
def test_safe_next_refuses_targets_off_this_origin(target):
    assert safe_next(target) is None
    assert safe_next(target, "/") == "/"


@pytest.mark.parametrize("target", SAFE)
def test_safe_next_keeps_paths_of_this_origin(target):
    assert safe_next(target) == target


def test_email_and_session_rules():
    assert normalize_email("  Carlos@Cliente.Example ") == "carlos@cliente.example"
    assert normalize_email(None) == ""
    assert session_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# Raw query strings as an attacker would type them: %-escapes decoded by the server once.
HOSTILE_QUERIES = ["/%09/evil.example", "/%0a/x", "/%0d/x", "//evil.example", "/%5Cevil.example",
                   "https://evil.example", "/%E3%80%80/evil.example", "/%EF%BC%8F/evil.example",
                   "%2F%2Fevil.example", "/%00/x"]


@pytest.mark.parametrize("prefix", sorted(set(PREFIXES.values())))
@pytest.mark.parametrize("raw", HOSTILE_QUERIES)
def test_the_language_switch_of_every_service_stays_on_this_origin(browser_client, prefix, raw):
    response = browser_client.get(f"{prefix}/idioma/en?next={raw}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("raw", HOSTILE_QUERIES)
def test_session_renewal_and_login_stay_on_this_origin(browser_client, raw):
    renewal = browser_client.get(f"/auth/sessao/renovar?next={raw}")
    assert renewal.status_code == 303
    assert renewal.headers["Location"].startswith("/auth/entrar")
    assert "evil" not in renewal.headers["Location"]
    login = browser_client.get(f"/auth/entrar?next={raw}")
    assert login.status_code == 200
    assert 'name="next"' not in login.get_data(as_text=True)  # the login form does not carry it on


def test_a_safe_target_is_kept(browser_client):
    target = "/e/alfa/configuracoes/usuarios-de-clientes?q=Carlos%20Pereira"
    response = browser_client.get(f"/idioma/en?next={quote(target)}")
    assert response.headers["Location"] == target
