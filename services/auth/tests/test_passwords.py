"""Password policy, hashing parameters and authentication."""
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from services.auth import services
from services.auth.models import Identity

from .conftest import ANA, CARLOS


@pytest.mark.parametrize("password, message", [
    ("curta1", "A senha deve ter pelo menos 8 caracteres."),
    ("x" * 129, "A senha deve ter no máximo 128 caracteres."),
    ("password", "Esta senha é muito comum. Escolha outra."),
    ("QWERTY123", "Esta senha é muito comum. Escolha outra."),
    ("Carlos@Exemplo.com.br", "A senha não pode ser igual ao seu e-mail."),
    ("carlos@exemplo.com.br", "A senha não pode ser igual ao seu e-mail."),
])
def test_policy_refuses_weak_passwords_with_a_clear_message(config, password, message):
    assert message in services.password_problems(password, email=CARLOS["email"])


def test_policy_refuses_the_local_part_of_the_email(config):
    problems = services.password_problems("joaquim.pereira", email="Joaquim.Pereira@exemplo.com.br")
    assert problems == ["A senha não pode ser igual ao seu e-mail."]


def test_policy_accepts_a_reasonable_password(config):
    assert services.password_problems("girassol-azul-42", email=CARLOS["email"]) == []
    assert services.password_problems("y" * 128 + "", email=CARLOS["email"]) == []


def test_register_refuses_policy_and_reports_every_message(auth_db, outbox_events):
    with pytest.raises(services.PasswordPolicyError) as exc:
        with auth_db.begin() as s:
            services.register_identity(s, email=CARLOS["email"], name="Carlos", password="123456")
    assert exc.value.messages == ["A senha deve ter pelo menos 8 caracteres.",
                                  "Esta senha é muito comum. Escolha outra."]
    with auth_db.begin() as s:
        assert s.scalars(select(Identity)).all() == []
    assert outbox_events() == []


def test_register_normalizes_email_and_refuses_duplicates(auth_db, make_identity, outbox_events):
    with auth_db.begin() as s:
        identity = services.register_identity(s, email="  Carlos@Exemplo.COM.br ", name="Carlos Souza",
                                              password=CARLOS["password"])
    assert identity.email == "carlos@exemplo.com.br"
    [event] = outbox_events("identity.registered")
    assert event["payload"] == {"identity_id": str(identity.id), "email": "carlos@exemplo.com.br"}
    with pytest.raises(services.EmailAlreadyRegistered):
        with auth_db.begin() as s:
            services.register_identity(s, email="CARLOS@exemplo.com.br", name="Outro", password="outra-senha-99")
    assert len(outbox_events("identity.registered")) == 1


def test_passwords_are_hashed_with_argon2id_owasp_parameters(make_identity):
    identity = make_identity()
    assert identity.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert CARLOS["password"] not in identity.password_hash


def test_authenticate_checks_the_password(auth_db, make_identity):
    carlos = make_identity()
    with auth_db.begin() as s:
        assert services.authenticate(s, email=" CARLOS@exemplo.com.br", password=CARLOS["password"]).id == carlos.id
        assert services.authenticate(s, email=CARLOS["email"], password="girassol-azul-43") is None
        assert services.authenticate(s, email=ANA["email"], password=CARLOS["password"]) is None


def test_unknown_email_still_costs_one_argon2_verification(auth_db, monkeypatch):
    calls = []
    real = services.PASSWORD_HASHER

    class Spy:
        def verify(self, hash_, password):
            calls.append(hash_)
            return real.verify(hash_, password)

    monkeypatch.setattr(services, "PASSWORD_HASHER", Spy())
    with auth_db.begin() as s:
        assert services.authenticate(s, email="ninguem@exemplo.com.br", password="qualquer-coisa") is None
    assert len(calls) == 1 and calls[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_login_rehashes_when_parameters_changed(auth_db, make_identity):
    carlos = make_identity()
    old_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(CARLOS["password"])
    with auth_db.begin() as s:
        s.get(Identity, carlos.id).password_hash = old_hash
    with auth_db.begin() as s:
        assert services.authenticate(s, email=CARLOS["email"], password=CARLOS["password"]) is not None
    with auth_db.begin() as s:
        new_hash = s.get(Identity, carlos.id).password_hash
    assert new_hash != old_hash and new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    with auth_db.begin() as s:
        assert services.authenticate(s, email=CARLOS["email"], password=CARLOS["password"]) is not None
