"""InputSchema, the base of every HTTP input schema: control characters refused in every
declared field (all values of a multi-valued field, an upload's file name), before any of the
schema's own hooks; passwords may hold anything but NUL."""
from __future__ import annotations

import io

import pytest
from marshmallow import EXCLUDE, ValidationError, fields, pre_load
from werkzeug.datastructures import FileStorage, MultiDict

from services.common.forms import InputSchema, has_control_characters, without_control_characters

MESSAGE = "Este campo contém caracteres de controle (invisíveis), que não são permitidos."


class _Form(InputSchema):
    class Meta:
        unknown = EXCLUDE

    PASSWORD_FIELDS = ("password",)
    name = fields.String(required=True)
    tags = fields.List(fields.String(), load_default=list)
    password = fields.String(load_default=None)
    arquivo = fields.Raw(load_default=None)

    @pre_load
    def _collapse(self, data, **_kw):  # like users' Nome: would hide \x1c-\x1f and \x85 (whitespace to split())
        return {k: (" ".join(v.split()) if isinstance(v, str) and k != "password" else v)
                for k, v in dict(data).items()}


def _errors(data):
    with pytest.raises(ValidationError) as err:
        _Form().load(data)
    return err.value.messages


@pytest.mark.parametrize("ch", ["\x00", "\x07", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f", "\x85", "\x9b"])
def test_every_c0_del_and_c1_character_is_refused(ch):
    assert has_control_characters(f"a{ch}b")
    assert {str(m) for m in _errors({"name": f"Ana{ch}Souza"})["name"]} == {MESSAGE}


def test_what_is_not_a_control_character_passes():
    for text in ("Ana Souza", "José D'Ávila", "ação – “citação”", "😀", "\u00a0", "\u200b"):
        assert not has_control_characters(text)
    assert _Form().load({"name": "José  D'Ávila"})["name"] == "José D'Ávila"


def test_every_value_of_a_multidict_field_and_list_items_are_checked():
    data = MultiDict([("name", "Ana Souza"), ("tags", "ok"), ("tags", "no\x00")])
    assert list(_errors(data)) == ["tags"]
    assert list(_errors({"name": "Ana Souza", "tags": ["ok", "\x1b[2J"]})) == ["tags"]


def test_an_uploads_file_name_is_checked():
    upload = FileStorage(io.BytesIO(b"x"), filename="usuarios\x00.csv")
    assert list(_errors({"name": "Ana Souza", "arquivo": upload})) == ["arquivo"]


def test_passwords_refuse_only_nul():
    assert _Form().load({"name": "Ana Souza", "password": "s3nha\x1b\t"})["password"] == "s3nha\x1b\t"
    assert list(_errors({"name": "Ana Souza", "password": "s3nha\x00"})) == ["password"]


def test_undeclared_fields_are_not_looked_at():
    assert _Form().load({"name": "Ana Souza", "csrf_token": "x\x00", "botao": "\x1b"}) == {
        "name": "Ana Souza", "tags": [], "password": None, "arquivo": None}


def test_a_preview_shows_where_the_control_characters_were():
    assert without_control_characters("Ana\x00Souza\n") == "Ana\ufffdSouza\ufffd"


@pytest.mark.parametrize("path", ["/convite/abcdefghijklmnopqrstu%00vwxyz", "/convite/abcdefghijklmnopqrstu%1bvwxyz",
                                  "/auth/redefinir-senha/abc%00def", "/notificacoes/caixa-de-entrada/%00",
                                  "/auth/idioma/%00", "/e/%00/"])
def test_a_control_character_in_any_services_path_is_a_404_page(browser_client, path):
    """Invitations and the notifier take no text but their path: refused before any query
    (on PostgreSQL a NUL would otherwise be a 500)."""
    response = browser_client.get(path)
    assert response.status_code == 404
    assert "Página não encontrada" in response.get_data(as_text=True)
