"""Brazilian document numbers, checked the same way by every service that takes one.

A CNPJ is numeric or, since July 2026 (IN RFB 2.229/2024), alphanumeric: 12 letters or digits,
then two numeric check digits (e.g. 12.ABC.345/01DE-35). python-stdnum 2.x validates both kinds;
what is stored and compared is the 14 characters, uppercase, without punctuation.
"""
from __future__ import annotations

from marshmallow import ValidationError
from stdnum.br import cnpj as stdnum_cnpj
from stdnum.exceptions import ValidationError as StdnumError


def N_(message: str) -> str:
    """Marks a pt-BR msgid for extraction; the form that shows the message translates it."""
    return message


INVALID_CNPJ = N_("CNPJ inválido.")


def clean_cnpj(value: str | None) -> str:
    """The 14 characters of a valid CNPJ, numeric or alphanumeric, uppercase and without
    punctuation, whatever the case and formatting typed; ValidationError "CNPJ inválido."
    otherwise (a pt-BR msgid: the form translates it when shown)."""
    try:
        digits = stdnum_cnpj.validate(str(value or ""))
    except StdnumError:
        raise ValidationError(INVALID_CNPJ) from None
    if len(set(digits)) == 1:  # 00.000.000/0000-00 and the like pass the check digits
        raise ValidationError(INVALID_CNPJ)
    return digits


def format_cnpj(value: str) -> str:
    """12.ABC.345/01DE-35 (or 11.222.333/0001-81) of the 14 stored characters."""
    return stdnum_cnpj.format(value)
