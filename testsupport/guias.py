"""Guias for the distribution tests, the browser tests' uploads and bench/: valid CNPJs and CPFs
per seed, an image-only PDF, and (from services/documents/sample_pdfs.py, which the demo data uses
too) DAS- and DARF-like one-page PDFs."""
from __future__ import annotations

import io

from stdnum.br import cnpj as stdnum_cnpj
from stdnum.br import cpf as stdnum_cpf

from services.documents.sample_pdfs import brl, darf_guia, das_guia, one_page_pdf, text_pdf  # noqa: F401

from .samples import png_bytes


def make_cnpj(seed: int, branch: int = 1) -> str:
    """A valid numeric CNPJ (14 digits) per seed: a batch of distinct companies."""
    base = f"{10_000_000 + seed * 7_919 % 89_999_999:08d}{branch:04d}"
    return base + stdnum_cnpj.calc_check_digits(base)


def make_cpf(seed: int) -> str:
    """A valid CPF (11 digits) per seed."""
    digits = [int(d) for d in f"{100_000_000 + seed * 104_729 % 899_999_999:09d}"]
    for _ in range(2):  # each check digit: the weighted sum (weights 10.. or 11..2) mod 11
        digits.append(sum(w * d for w, d in zip(range(len(digits) + 1, 1, -1), digits, strict=True)) * 10 % 11 % 10)
    number = "".join(map(str, digits))
    assert stdnum_cpf.is_valid(number)
    return number


def image_only_pdf() -> bytes:
    """A page holding only an image (a scanned guia): no text to read."""
    pdf = one_page_pdf()
    pdf.image(io.BytesIO(png_bytes((120, 80), (240, 240, 240))), x=10, y=10, w=120)
    return bytes(pdf.output())
