"""The comprovante de entrega: a one- or two-page PDF, made in memory with fpdf2 (it is small),
of what the service knows about a document's delivery — published when and by whom; for each
client it was for, the e-mail that told them (accepted by the SMTP server when, its Message-ID)
and their first opening (when, by whom, from which IP) —, and the document's SHA-256, which
identifies the bytes delivered.

The core fonts write Latin-1: any other character is shown as "?" (names are kept readable).
"""
from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from fpdf import FPDF

from services.common.dates import datahora

from .models import Company, Department, Document, Firm
from .queries import Delivery
from .schemas import format_valor


def _latin1(text: str) -> str:
    text = text.replace("—", "-").replace("–", "-").replace("“", '"').replace("”", '"').replace("’", "'")
    return text.encode("latin-1", "replace").decode("latin-1")


def email_line(delivery: Delivery) -> str:
    """What the comprovante (and the detail page) say of the e-mail to one client."""
    digest, notification = delivery.digest, delivery.notification
    if digest is not None and digest.accepted_at is not None:
        return _("E-mail: aceito pelo servidor SMTP em %(when)s; Message-ID: %(message_id)s",
                 when=datahora(digest.accepted_at), message_id=digest.message_id or "-")
    if digest is not None and digest.failed:
        return _("E-mail: não entregue ao servidor SMTP (%(reason)s)", reason=digest.failed)
    if notification is not None and notification.emailed is None:
        return _("E-mail: não enviado (notificação desativada)")
    if notification is None and not delivery.wants_email:
        return _("E-mail: não enviado (notificação desativada)")
    return _("E-mail: aguardando envio")


def opening_line(delivery: Delivery) -> str:
    view = delivery.view
    if view is None:
        return _("Não visualizado")
    if not view.ip:
        return _("Visualizado por %(name)s em %(when)s (IP não registrado)", name=view.name,
                 when=datahora(view.opened_at))
    return _("Visualizado por %(name)s em %(when)s, do IP %(ip)s", name=view.name, when=datahora(view.opened_at),
             ip=view.ip)


def receipt_pdf(*, firm: Firm, document: Document, company: Company | None, department: Department | None,
                deliveries: list[Delivery], made_at: datetime) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(_("Comprovante de entrega")))
    pdf.set_creator("Balcão")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def line(text: str, *, bold: bool = False, size: int = 10, gap: float = 5.5) -> None:
        pdf.set_font("Helvetica", "B" if bold else "", size)
        pdf.multi_cell(width, gap, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    line(_("Comprovante de entrega"), bold=True, size=15, gap=9)
    line(firm.name, size=11)
    pdf.ln(3)
    line(_("Documento: %(name)s", name=document.name), bold=True)
    if company is not None:
        line(_("Empresa: %(name)s", name=company.display_name))
    if department is not None:
        line(_("Departamento: %(name)s", name=department.name))
    if document.competencia:
        line(_("Competência: %(value)s", value=document.competencia))
    if document.guia_tipo:
        guia = _("Guia: %(tipo)s", tipo=document.guia_tipo)
        if document.vencimento:
            guia += " · " + _("vencimento %(day)s", day=document.vencimento.strftime("%d/%m/%Y"))
        if document.valor is not None:
            guia += " · " + _("valor R$ %(value)s", value=format_valor(document.valor))
        line(guia)
    line(_("SHA-256 do arquivo: %(sha)s", sha=document.sha256))
    line(_("Tamanho: %(size)s bytes", size=f"{document.size:,}".replace(",", ".")))
    pdf.ln(2)
    if document.published_at:
        line(_("Publicado por %(name)s em %(when)s", name=document.added_by_name or "-",
               when=datahora(document.published_at)))
    if document.retracted_at:
        line(_("Retirado por %(name)s em %(when)s", name=document.retracted_by_name or "-",
               when=datahora(document.retracted_at)))
    pdf.ln(3)
    line(_("Entrega aos clientes"), bold=True, size=12, gap=7)
    if not deliveries:
        line(_("Nenhum cliente da empresa vê este departamento."))
    for delivery in deliveries:
        who = delivery.name + (f" <{delivery.email}>" if delivery.email else "")
        line(who, bold=True)
        line(email_line(delivery))
        line(opening_line(delivery))
        pdf.ln(2)
    pdf.ln(2)
    line(_("Emitido em %(when)s pelo Balcão.", when=datahora(made_at)), size=8)
    return bytes(pdf.output())
