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


# Each directive the pages' policy must have, with exactly these sources.
REQUIRED_CSP = {"default-src": ["'self'"], "script-src": ["'self'"], "style-src": ["'self'"],
                "img-src": ["'self'", "data:"], "object-src": ["'none'"], "base-uri": ["'none'"],
                "form-action": ["'self'"], "frame-ancestors": ["'none'"]}
NEVER_IN_CSP = ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "http:", "https:")


def parse_csp(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header → {directive: [sources]}, as a browser reads it
    (directive names are case-insensitive; a repeated directive is ignored by browsers, so it is an
    error here)."""
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        tokens = part.split()
        if not tokens:
            continue
        name = tokens[0].lower()
        assert name not in directives, f"directive {name} given twice in {policy!r}"
        directives[name] = tokens[1:]
    return directives


def csp_problems(policy: str) -> list[str]:
    directives = parse_csp(policy)
    problems = [f"{name}: {directives.get(name)} instead of {REQUIRED_CSP[name]}" for name in REQUIRED_CSP
                if directives.get(name) != REQUIRED_CSP[name]]
    problems += [f"{name} allows {source}" for name, sources in directives.items()
                 for source in sources if source.lower() in NEVER_IN_CSP]
    return problems


def test_the_csp_check_refuses_weak_policies():
    good = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    assert csp_problems(good) == []
    assert csp_problems(good.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'"))
    assert csp_problems(good + "; worker-src 'unsafe-inline'")  # anywhere, not only in script-src
    assert csp_problems(good.replace("frame-ancestors 'none'", ""))
    assert csp_problems(good.replace("object-src 'none'", "object-src *"))
    assert csp_problems(good.replace("; base-uri 'none'", "")) == ["base-uri: None instead of [\"'none'\"]"]


def test_every_page_has_the_strict_csp(browser_client, config):
    pages = ["/auth/entrar", "/auth/esqueci-senha", "/convite/nao-existe-este-convite-de-jeito-nenhum",
             "/nao-existe", "/notificacoes/caixa-de-entrada", "/healthz"]
    problems = {}
    for path in pages:
        response = browser_client.get(path)
        assert response.status_code < 500, path
        found = csp_problems(response.headers.get("Content-Security-Policy", ""))
        if found:
            problems[path] = found
    refused = browser_client.post("/auth/entrar", data={"email": "x@example.com", "password": "x"})  # no CSRF
    assert refused.status_code == 400
    if csp_problems(refused.headers.get("Content-Security-Policy", "")):
        problems["POST /auth/entrar without CSRF"] = csp_problems(refused.headers["Content-Security-Policy"])
    assert not problems, problems


def test_security_headers_and_friendly_404(browser_client):
    response = browser_client.get("/convite/nao-existe-este-convite-de-jeito-nenhum")
    assert response.status_code == 404
    headers = response.headers
    assert csp_problems(headers["Content-Security-Policy"]) == []
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    missing = browser_client.get("/nao-existe")
    assert missing.status_code == 404 and "Página não encontrada" in missing.get_data(as_text=True)


def test_request_id_is_echoed_when_well_formed(browser_client):
    assert browser_client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = browser_client.get("/healthz", headers={"X-Request-ID": "bad id <script>"}).headers["X-Request-ID"]
    assert generated != "bad id <script>" and len(generated) == 32
