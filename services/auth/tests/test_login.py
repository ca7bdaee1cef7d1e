"""Login and logout pages."""
import pytest

from testsupport import csrf_token

from .conftest import CARLOS, location_path, session_claims


def _login(client, *, email, password, next_=None, path="/auth/entrar"):
    page = client.get(path)
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), "email": email, "password": password}
    if next_ is not None:
        data["next"] = next_
    return client.post("/auth/entrar", data=data)


def test_login_page_has_the_product_labels(browser_client):
    html = browser_client.get("/auth/entrar").get_data(as_text=True)
    for label in ("E-mail", "Senha", "Entrar", "Esqueci a senha"):
        assert label in html
    assert 'href="/auth/esqueci-senha' in html


def test_login_issues_a_session_and_goes_home(browser_client, make_identity, keyring):
    carlos = make_identity()
    response = _login(browser_client, email="  Carlos@Exemplo.com.br ", password=CARLOS["password"])
    assert response.status_code == 303
    assert location_path(response) == "/"
    claims = session_claims(browser_client, keyring)
    assert claims["sub"] == str(carlos.id)
    assert claims["email"] == CARLOS["email"] and claims["name"] == CARLOS["name"]


def test_login_follows_a_relative_next(browser_client, make_identity):
    make_identity()
    response = _login(browser_client, email=CARLOS["email"], password=CARLOS["password"],
                      next_="/e/beta/?aba=documentos")
    assert response.status_code == 303
    assert location_path(response) == "/e/beta/?aba=documentos"


def test_the_login_form_carries_next_from_the_query(browser_client):
    html = browser_client.get("/auth/entrar?next=/e/alfa/").get_data(as_text=True)
    assert 'name="next" value="/e/alfa/"' in html


@pytest.mark.parametrize("evil", ["//evil.example/", "https://evil.example/", "/\\evil.example",
                                  "evil.example", "javascript:alert(1)"])
def test_login_refuses_an_open_redirect(browser_client, make_identity, evil):
    make_identity()
    response = _login(browser_client, email=CARLOS["email"], password=CARLOS["password"], next_=evil)
    assert response.status_code == 303
    assert response.headers["Location"] in ("/", "http://localhost/")


def test_wrong_password_and_unknown_email_get_the_same_answer(browser_client, make_identity, keyring):
    make_identity()
    wrong = _login(browser_client, email=CARLOS["email"], password="senha-errada-123")
    unknown = _login(browser_client, email="ninguem@exemplo.com.br", password="senha-errada-123")
    for response, email in ((wrong, CARLOS["email"]), (unknown, "ninguem@exemplo.com.br")):
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert "E-mail ou senha incorretos." in html
        assert f'value="{email}"' in html  # the e-mail stays in the field
        assert "senha-errada-123" not in html  # the password does not
    assert wrong.status_code == unknown.status_code
    assert session_claims(browser_client, keyring) is None


def test_empty_fields_get_a_message_and_keep_the_email(browser_client):
    response = _login(browser_client, email="carlos@exemplo.com.br", password="")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Informe a senha." in html and 'value="carlos@exemplo.com.br"' in html


def test_login_without_csrf_token_is_refused(browser_client, make_identity, keyring):
    make_identity()
    browser_client.get("/auth/entrar")
    response = browser_client.post("/auth/entrar", data={"email": CARLOS["email"], "password": CARLOS["password"]})
    assert response.status_code == 400
    assert session_claims(browser_client, keyring) is None


def test_logout_clears_the_session(browser_client, make_identity, keyring):
    make_identity()
    _login(browser_client, email=CARLOS["email"], password=CARLOS["password"])
    assert session_claims(browser_client, keyring) is not None
    token = csrf_token(browser_client.get("/auth/entrar").get_data(as_text=True))
    response = browser_client.post("/auth/sair", data={"csrf_token": token, "next": "//evil.example"},
                                   follow_redirects=True)  # through the front-channel logout
    assert [r.status_code for r in response.history] == [303, 303]
    assert location_path(response.history[-1]) == "/auth/entrar"
    assert session_claims(browser_client, keyring) is None


def test_logout_goes_to_a_safe_next(browser_client, make_identity):
    make_identity()
    _login(browser_client, email=CARLOS["email"], password=CARLOS["password"])
    token = csrf_token(browser_client.get("/auth/entrar").get_data(as_text=True))
    response = browser_client.post("/auth/sair", data={"csrf_token": token, "next": "/auth/convite?ticket=abc"},
                                   follow_redirects=True)
    assert location_path(response.history[-1]) == "/auth/convite?ticket=abc"


def test_logout_without_csrf_token_is_refused(browser_client, make_identity, keyring):
    make_identity()
    _login(browser_client, email=CARLOS["email"], password=CARLOS["password"])
    response = browser_client.post("/auth/sair", data={})
    assert response.status_code == 400
    assert session_claims(browser_client, keyring) is not None
