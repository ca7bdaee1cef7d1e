"""Second factor: TOTP enrolment behind the password, asked at login and before linking a new
firm, single-use recovery codes, never bypassed by a password reset."""
import re
from urllib.parse import quote, urlsplit

import pyotp

from testsupport import csrf_token

from .conftest import CARLOS, location_path, login, new_browser, post_form, session_claims

MFA = "/auth/minha-conta/verificacao-em-duas-etapas"


def _signed_in(config):
    client, _apps = new_browser(config)
    assert login(client, email=CARLOS["email"], password=CARLOS["password"]).status_code == 303
    return client


def _enrol(client, clock):
    page = post_form(client, MFA, MFA + "/ativar", {"password": CARLOS["password"]})
    html = page.get_data(as_text=True)
    secret = re.search(r'<code id="mfa-secret">([A-Z2-7]+)</code>', html).group(1)
    done = post_form(client, MFA, MFA + "/confirmar", {"code": pyotp.TOTP(secret).at(clock())})
    codes = re.findall(r"<code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code>", done.get_data(as_text=True))
    return secret, codes


def _code_step(client, code):
    html = client.get("/auth/verificacao").get_data(as_text=True)
    return client.post("/auth/verificacao", data={"csrf_token": csrf_token(html), "code": code})


def test_enrolment_needs_the_password_and_a_code(config, make_identity, clock, outbox_events):
    make_identity()
    client = _signed_in(config)
    wrong = post_form(client, MFA, MFA + "/ativar", {"password": "nao-e-essa-123"})
    assert wrong.status_code == 422 and "Senha incorreta." in wrong.get_data(as_text=True)
    page = post_form(client, MFA, MFA + "/ativar", {"password": CARLOS["password"]})
    html = page.get_data(as_text=True)
    assert "<svg" in html and 'id="mfa-secret"' in html
    secret = re.search(r'<code id="mfa-secret">([A-Z2-7]+)</code>', html).group(1)
    bad = post_form(client, MFA, MFA + "/confirmar", {"code": "000000"})
    assert bad.status_code == 422 and "Código inválido" in bad.get_data(as_text=True)
    done = post_form(client, MFA, MFA + "/confirmar", {"code": pyotp.TOTP(secret).at(clock())})
    codes = re.findall(r"<code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code>", done.get_data(as_text=True))
    assert len(set(codes)) == 10
    assert "Ativada" in client.get(MFA).get_data(as_text=True)
    (notice,) = [e for e in outbox_events("notification.email_requested") if e["payload"]["template"] == "mfa_changed"]
    assert notice["payload"]["context"]["change"] == "enabled"


def test_login_asks_the_code_and_refuses_a_wrong_or_replayed_one(config, make_identity, clock, keyring):
    make_identity()
    secret, _codes = _enrol(_signed_in(config), clock)
    clock.advance(seconds=30)
    client, _apps = new_browser(config)
    response = login(client, email=CARLOS["email"], password=CARLOS["password"], next_="/e/alfa/")
    assert location_path(response) == "/auth/verificacao" and session_claims(client, keyring) is None
    assert "Código de verificação" in client.get("/auth/verificacao").get_data(as_text=True)
    wrong = _code_step(client, "123456")
    assert wrong.status_code == 422 and session_claims(client, keyring) is None
    code = pyotp.TOTP(secret).at(clock())
    ok = _code_step(client, code)
    assert location_path(ok) == "/e/alfa/" and session_claims(client, keyring) is not None
    # the same code cannot be used again
    again, _apps = new_browser(config)
    login(again, email=CARLOS["email"], password=CARLOS["password"])
    assert _code_step(again, code).status_code == 422
    # the code page without a right password first is the login page
    stranger, _apps = new_browser(config)
    assert location_path(stranger.get("/auth/verificacao")) == "/auth/entrar"


def test_a_recovery_code_works_once(config, make_identity, clock, keyring):
    make_identity()
    _secret, codes = _enrol(_signed_in(config), clock)
    first, _apps = new_browser(config)
    login(first, email=CARLOS["email"], password=CARLOS["password"])
    assert location_path(_code_step(first, codes[3].upper())) == "/"
    second, _apps = new_browser(config)
    login(second, email=CARLOS["email"], password=CARLOS["password"])
    assert _code_step(second, codes[3]).status_code == 422
    assert location_path(_code_step(second, codes[4])) == "/"
    assert "Códigos de recuperação restantes: 8" in second.get(MFA).get_data(as_text=True)


def test_linking_a_new_firm_asks_the_code_after_the_password(config, make_identity, make_ticket, clock,
                                                              outbox_events):
    make_identity()
    secret, _codes = _enrol(_signed_in(config), clock)
    clock.advance(seconds=30)
    ticket, claims = make_ticket()
    client, _apps = new_browser(config)
    html = client.get("/auth/convite?ticket=" + quote(ticket)).get_data(as_text=True)
    response = client.post("/auth/convite/vincular", data={"csrf_token": csrf_token(html), "ticket": ticket,
                                                            "password": CARLOS["password"]})
    assert location_path(response) == "/auth/verificacao"
    assert outbox_events("link.verified") == []
    assert "vincular um novo escritório" in client.get("/auth/verificacao").get_data(as_text=True)
    assert _code_step(client, "999999").status_code == 422 and outbox_events("link.verified") == []
    done = _code_step(client, pyotp.TOTP(secret).at(clock()))
    assert location_path(done) == f"/vinculando/{claims['inv']}"
    assert [e["payload"]["invitation_id"] for e in outbox_events("link.verified")] == [claims["inv"]]


def test_a_password_reset_does_not_bypass_mfa(config, make_identity, clock, keyring, outbox_events):
    make_identity()
    _enrol(_signed_in(config), clock)
    client, _apps = new_browser(config)
    post_form(client, "/auth/esqueci-senha", "/auth/esqueci-senha", {"email": CARLOS["email"]})
    mail = [e for e in outbox_events("notification.email_requested") if e["payload"]["template"] == "password_reset"][0]
    path = urlsplit(keyring.unseal(mail["payload"]["sealed"])["link"]).path
    post_form(client, path, path, {"password": "jabuticaba-doce-88", "password_confirmation": "jabuticaba-doce-88"})
    response = login(client, email=CARLOS["email"], password="jabuticaba-doce-88")
    assert location_path(response) == "/auth/verificacao" and session_claims(client, keyring) is None


def test_removal_needs_the_password(config, make_identity, clock, outbox_events):
    make_identity()
    client = _signed_in(config)
    _enrol(client, clock)
    wrong = post_form(client, MFA, MFA + "/desativar", {"password": "nao-e-essa-123"})
    assert wrong.status_code == 422 and "Ativada" in wrong.get_data(as_text=True)
    post_form(client, MFA, MFA + "/desativar", {"password": CARLOS["password"]})
    assert "Ativar" in client.get(MFA).get_data(as_text=True)
    fresh, _apps = new_browser(config)
    assert location_path(login(fresh, email=CARLOS["email"], password=CARLOS["password"])) == "/"
    changes = [e["payload"]["context"]["change"] for e in outbox_events("notification.email_requested")
               if e["payload"]["template"] == "mfa_changed"]
    assert changes == ["enabled", "disabled"]


def test_wrong_codes_count_towards_the_lock(config, make_identity, clock):
    make_identity()
    _enrol(_signed_in(config), clock)
    client, _apps = new_browser(config)
    for _i in range(10):
        # re-entering the right password does not reset the count while the code is wrong
        login(client, email=CARLOS["email"], password=CARLOS["password"])
        response = _code_step(client, "000000")
    assert "Conta bloqueada temporariamente" in response.get_data(as_text=True)
    again = login(client, email=CARLOS["email"], password=CARLOS["password"])
    assert again.status_code == 422 and "Conta bloqueada temporariamente" in again.get_data(as_text=True)


def test_wrong_codes_lock_the_guessers_browser_not_the_owners_device(config, make_identity, clock):
    make_identity()
    owner = _signed_in(config)
    secret, _codes = _enrol(owner, clock)
    post_form(owner, MFA, "/auth/sair", {})
    # someone who learnt the password guesses codes from the owner's own network (the same IP)
    guesser, _apps = new_browser(config)
    for _i in range(10):
        login(guesser, email=CARLOS["email"], password=CARLOS["password"])
        response = _code_step(guesser, "000000")
    assert "Conta bloqueada temporariamente" in response.get_data(as_text=True)
    clock.advance(seconds=30)
    assert "Conta bloqueada temporariamente" in login(guesser, email=CARLOS["email"],
                                                      password=CARLOS["password"]).get_data(as_text=True)
    # the owner's browser is a device auth knows: the password and the code still get in
    assert location_path(login(owner, email=CARLOS["email"], password=CARLOS["password"])) == "/auth/verificacao"
    assert location_path(_code_step(owner, pyotp.TOTP(secret).at(clock()))) == "/"


def test_recovery_codes_are_stored_with_argon2id_and_typed_loosely(config, make_identity, clock, auth_db):
    from sqlalchemy import select

    from services.auth.models import RecoveryCode
    make_identity()
    _secret, codes = _enrol(_signed_in(config), clock)
    assert len(codes) == 10 and all(len(c.replace("-", "")) == 12 for c in codes)  # 60 bits each
    with auth_db.begin() as s:
        hashes = list(s.scalars(select(RecoveryCode.code_hash)))
    assert len(hashes) == 10 and all(h.startswith("$argon2id$v=19$m=19456,t=2,p=1$") for h in hashes)
    assert len(set(h.rsplit("$", 2)[1] for h in hashes)) == 10  # salted: a salt per code
    assert not any(c.replace("-", "") in h for c in codes for h in hashes)
    client, _apps = new_browser(config)
    login(client, email=CARLOS["email"], password=CARLOS["password"])
    # typed without dashes, in capitals, with spaces: still the code
    assert location_path(_code_step(client, " " + codes[7].replace("-", " ").upper())) == "/"


def test_a_recovery_code_issued_before_argon2_still_works_once(config, make_identity, clock, auth_db):
    import hashlib
    import uuid

    from services.auth.models import Identity, RecoveryCode
    identity = make_identity()
    _enrol(_signed_in(config), clock)
    with auth_db.begin() as s:  # a row as the previous version stored it: SHA-256 of 10 hex characters
        s.add(RecoveryCode(id=uuid.uuid4(), identity_id=s.get(Identity, identity.id).id,
                           code_hash=hashlib.sha256(b"0a1b2c3d4e").hexdigest()))
    first, _apps = new_browser(config)
    login(first, email=CARLOS["email"], password=CARLOS["password"])
    assert location_path(_code_step(first, "0a1b2-c3d4e")) == "/"
    second, _apps = new_browser(config)
    login(second, email=CARLOS["email"], password=CARLOS["password"])
    assert _code_step(second, "0a1b2-c3d4e").status_code == 422


def test_a_wrong_totp_code_never_costs_argon2_verifies(config, make_identity, clock, monkeypatch):
    from services.auth import services
    make_identity()
    _enrol(_signed_in(config), clock)
    client, _apps = new_browser(config)
    login(client, email=CARLOS["email"], password=CARLOS["password"])
    calls = []
    real = services.PASSWORD_HASHER

    class Counting:
        def verify(self, *args):
            calls.append(args)
            return real.verify(*args)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(services, "PASSWORD_HASHER", Counting())
    assert _code_step(client, "123456").status_code == 422
    assert calls == []
    assert _code_step(client, "abcd-efgh-ijkl").status_code == 422  # a wrong recovery code
    assert len(calls) == 10  # one verify per unused code, no more
