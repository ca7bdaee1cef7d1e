"""The e-mail that confirms a self-service sign-up (Cadastre seu escritório): what it says, and what
it never carries (what a stranger typed as Razão social or Nome; a sender name of their choosing)."""
from __future__ import annotations

import pytest
from marshmallow import ValidationError

from services.common.events import validate_email_context
from services.notifier.rendering import from_header, render_email

LINK = "http://balcao.test/auth/cadastro-de-escritorio/confirmar/tok&x=1"
CONTEXT = {"name": "", "cnpj": "12.ABC.345/01DE-35", "expires_in_hours": "24"}


def test_it_names_the_cnpj_and_the_link_and_says_when_it_expires():
    subject, text, html = render_email("firm_signup", {**CONTEXT, "link": LINK})
    assert subject == "Confirme o cadastro do seu escritório no Balcão"
    assert text.startswith("Olá!")
    for body in (text, html):
        assert "12.ABC.345/01DE-35" in body and "24 horas" in body and "só pode ser usado uma vez" in body
        assert "Confirmar cadastro" in body and "Se você não fez este pedido, ignore este e-mail" in body
    assert text.count(LINK) == 2
    assert html.count('href="{}"'.format(LINK.replace("&", "&amp;"))) == 2


def test_its_context_holds_no_free_text_and_its_sender_is_balcao():
    validate_email_context("firm_signup", CONTEXT)
    for bad in ({**CONTEXT, "firm_name": "Banco Falso S.A."}, {**CONTEXT, "legal_name": "Ganhe dinheiro já"},
                {**CONTEXT, "cnpj": "Visite www.golpe.example"}):
        with pytest.raises(ValidationError):
            validate_email_context("firm_signup", bad)
    sender = from_header(CONTEXT.get("firm_name"), "nao-responda@balcao.test")
    assert sender == from_header(None, "nao-responda@balcao.test") and "via" not in sender  # plain "Balcão"
