"""Validation of the client user form and of firm/company documents, in pt-BR."""
import uuid

import pytest

from services.users import services
from services.users.schemas import ClientUserSchema, load_form
from services.users.tests.conftest import make_cnpj, make_cpf, users_db


def _load(**data):
    base = {"name": "Carlos Souza", "email": "carlos@example.com"}
    base.update(data)
    return load_form(ClientUserSchema(), base)


def test_valid_input_is_normalized():
    values, errors = _load(name="  Carlos   Souza ", email=" Carlos@Example.COM ", cpf="123.456.789-09",
                           phone="(11) 98765-4321")
    assert errors == {}
    assert values["name"] == "Carlos Souza"
    assert values["email"] == "carlos@example.com"
    assert values["cpf"] == "12345678909"
    assert values["phone"] == "+5511987654321"


def test_cpf_and_phone_are_optional():
    values, errors = _load(cpf="", phone="  ")
    assert errors == {} and values["cpf"] is None and values["phone"] is None


@pytest.mark.parametrize("field,value,message", [
    ("name", "Carlos", "Informe nome e sobrenome."),
    ("name", "", "Informe nome e sobrenome."),
    ("cpf", "123.456.789-00", "CPF inválido."),
    ("cpf", "111", "CPF inválido."),
    ("cpf", "111.111.111-11", "CPF inválido."),
    ("phone", "1234", "Telefone inválido."),
    ("phone", "(11) 0000-000", "Telefone inválido."),
    ("email", "carlos@", "E-mail inválido."),
    ("email", "carlos.example.com", "E-mail inválido."),
])
def test_invalid_fields_get_pt_br_messages(field, value, message):
    _values, errors = _load(**{field: value})
    assert errors[field] == [message]


def test_every_invalid_field_is_reported_at_once():
    _values, errors = _load(name="Carlos", email="x", cpf="1", phone="2")
    assert set(errors) == {"name", "email", "cpf", "phone"}


def test_duplicate_email_in_the_same_firm_is_refused_but_not_in_another(config):
    with users_db(config).begin() as s:
        alfa = services.create_firm(s, name="Contabilidade Alfa", cnpj=make_cnpj(1), admin_identity_id=uuid.uuid4(),
                                    admin_name="Ana Lima", admin_email="ana@alfa.com.br")
        beta = services.create_firm(s, name="Contabilidade Beta", cnpj=make_cnpj(2), admin_identity_id=uuid.uuid4(),
                                    admin_name="Bruno Reis", admin_email="bruno@beta.com.br")
        services.register_client_user(s, firm=alfa, name="Carlos Souza", email="carlos@example.com")
        with pytest.raises(services.ClientUserError) as exc:
            services.register_client_user(s, firm=alfa, name="Carlos S. Souza", email=" CARLOS@example.com")
        assert exc.value.message == "Já existe um usuário com este e-mail neste escritório."
        assert exc.value.field == "email"
        services.register_client_user(s, firm=beta, name="Carlos Souza", email="carlos@example.com")


def test_a_deleted_user_can_be_registered_again_with_the_same_email(config):
    with users_db(config).begin() as s:
        alfa = services.create_firm(s, name="Contabilidade Alfa", cnpj=make_cnpj(1), admin_identity_id=uuid.uuid4(),
                                    admin_name="Ana Lima", admin_email="ana@alfa.com.br")
        old = services.register_client_user(s, firm=alfa, name="Carlos Souza", email="carlos@example.com",
                                            cpf=make_cpf(1))
        services.delete_client_user(s, firm=alfa, client_user=old)
        new = services.register_client_user(s, firm=alfa, name="Carlos Souza", email="carlos@example.com")
        assert new.id != old.id and old.status == "deleted" and new.status == "not_invited"


def test_firm_cnpj_is_validated_and_unique_and_slugs_do_not_collide(config):
    with users_db(config).begin() as s:
        with pytest.raises(ValueError, match="CNPJ inválido."):
            services.create_firm(s, name="Contabilidade Alfa", cnpj="11.111.111/0001-11",
                                 admin_identity_id=uuid.uuid4(), admin_name="Ana Lima", admin_email="a@a.com")
        first = services.create_firm(s, name="Contabilidade Alfa", cnpj=make_cnpj(1),
                                     admin_identity_id=uuid.uuid4(), admin_name="Ana Lima", admin_email="a@a.com")
        with pytest.raises(ValueError, match="Já existe um escritório com este CNPJ."):
            services.create_firm(s, name="Outra", cnpj=make_cnpj(1), admin_identity_id=uuid.uuid4(),
                                 admin_name="Ana Lima", admin_email="a@a.com")
        second = services.create_firm(s, name="Contabilidade  Álfa", cnpj=make_cnpj(2),
                                      admin_identity_id=uuid.uuid4(), admin_name="Ana Lima", admin_email="a@a.com")
        assert first.slug == "contabilidade-alfa"
        assert second.slug == "contabilidade-alfa-2"


def test_company_cnpj_is_validated_and_unique_per_firm(config):
    with users_db(config).begin() as s:
        alfa = services.create_firm(s, name="Contabilidade Alfa", cnpj=make_cnpj(1), admin_identity_id=uuid.uuid4(),
                                    admin_name="Ana Lima", admin_email="ana@alfa.com.br")
        with pytest.raises(ValueError, match="CNPJ inválido."):
            services.create_company(s, firm=alfa, name="Padaria", cnpj="123")
        company = services.create_company(s, firm=alfa, name="Padaria", cnpj=make_cnpj(5))
        assert company.cnpj == make_cnpj(5)
        with pytest.raises(ValueError, match="Já existe uma empresa com este CNPJ neste escritório."):
            services.create_company(s, firm=alfa, name="Padaria 2", cnpj=make_cnpj(5))


@pytest.mark.parametrize("kind, stored, shown", [
    ("cnpj", "12ABC34501DE35", "12.ABC.345/01DE-35"), ("cnpj", make_cnpj(7), None),
    ("cpf", "52998224725", "529.982.247-25"), ("cpf", make_cpf(42), None), ("cnpj", "", "")])
def test_documents_are_shown_with_their_punctuation(kind, stored, shown):
    from stdnum.br import cnpj, cpf

    from services.users.schemas import format_document
    expected = shown if shown is not None else (cnpj if kind == "cnpj" else cpf).format(stored)
    assert format_document(kind, stored) == expected
