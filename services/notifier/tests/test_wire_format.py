"""What the notifier writes of an e-mail's headers: the From kept in the delivery (`from_shown`) is
the text the email package shows for the header `from_header` writes."""
from __future__ import annotations

from email.message import EmailMessage

import pytest

from services.notifier.rendering import from_header, from_shown

MAIL_FROM = "nao-responda@balcao.test"

FIRM_NAMES = [
    None, "Contabilidade Alfa", "Contabilidade São João Ltda", "Alfa, Beta & Cia.", 'Escritório "Modelo"',
    "A\\B (matriz) <sede>", "🧾 Contas & Cia 😀", "Nome_com_sublinhado ?=", "Ltda. @ filial",
    "Contabilidade Alfa Beta Gama Delta Epsilon Zeta Eta Theta Iota Kappa Lambda Mu Nu Xi Omicron",
    "Ação Contábil ÇÉÍÓÚ ãõ âêô à", "x" * 120, "São " * 40, "ñ" * 90,
    "Organização Contábil e Assessoria Empresarial São Sebastião do Paraíso Ltda",
    "  Alfa \t Beta  ", "Alfa\\",
]


def _decoded(address_header: str) -> str:
    """An address header as the email package shows it (what the delivery kept, before from_shown)."""
    message = EmailMessage()
    message["From"] = address_header
    return str(message["From"])


@pytest.mark.parametrize("firm_name", FIRM_NAMES)
def test_the_delivery_keeps_the_from_the_email_package_would_show(firm_name):
    assert from_shown(firm_name, MAIL_FROM) == _decoded(from_header(firm_name, MAIL_FROM))


def test_a_name_that_looks_encoded_is_kept_as_written():
    # (the email package decoded the literal "=?...?=" of such a name)
    assert from_shown("=?utf-8?q?falso?= Ltda", MAIL_FROM) == f"=?utf-8?q?falso?= Ltda via Balcão <{MAIL_FROM}>"
