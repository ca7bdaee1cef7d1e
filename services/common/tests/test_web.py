"""The web layer every service shares: language switch, security headers, error pages."""


def test_language_switch_shows_english_and_comes_back(browser_client):
    page = browser_client.get("/auth/entrar")
    assert "Sair" not in page.get_data(as_text=True)  # anonymous: no logout
    assert "Portal do Cliente" in page.get_data(as_text=True)
    response = browser_client.get("/auth/idioma/en?next=/auth/entrar")
    assert response.status_code == 303 and response.headers["Location"] == "/auth/entrar"
    assert "Client Portal" in browser_client.get("/auth/entrar").get_data(as_text=True)
    browser_client.get("/idioma/pt_BR?next=/auth/entrar")
    assert "Portal do Cliente" in browser_client.get("/auth/entrar").get_data(as_text=True)


def test_language_switch_refuses_other_sites_and_locales(browser_client):
    assert browser_client.get("/idioma/en?next=//evil.example/x").headers["Location"] == "/"
    assert browser_client.get("/idioma/en?next=https://evil.example/").headers["Location"] == "/"
    assert browser_client.get("/idioma/xx").status_code == 404


def test_security_headers_and_friendly_404(browser_client):
    response = browser_client.get("/convite/nao-existe-este-convite-de-jeito-nenhum")
    assert response.status_code == 404
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    missing = browser_client.get("/nao-existe")
    assert missing.status_code == 404 and "Página não encontrada" in missing.get_data(as_text=True)


def test_request_id_is_echoed_when_well_formed(browser_client):
    assert browser_client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = browser_client.get("/healthz", headers={"X-Request-ID": "bad id <script>"}).headers["X-Request-ID"]
    assert generated != "bad id <script>" and len(generated) == 32
