"""Notifications of Documentos: each client is told of a new document as they chose (Nenhuma /
E-mail / Portal / E-mail e portal); documents published for one person within the window go in ONE
e-mail (300 guias are one e-mail, even with two digest jobs at once); an unopened guia is reminded
once before its vencimento; the bell and the Escritório selector count unread notices — on the
documents pages from its own database, on the users service's pages from its projection of
`document_inbox.changed`; a retracted document that had been opened is announced."""
from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from services.common.messaging import utcnow
from services.common.runtime import database
from services.documents import consumers, models
from services.documents.services import Actor, Metadata, retract
from services.notifier.models import Delivery
from services.users import services as users_services
from services.users.models import Company as UsersCompany
from services.users.models import Firm as UsersFirm
from services.users.tests.conftest import Person, link_client, text_of, users_db
from testsupport import csrf_token
from testsupport.guias import das_guia, make_cnpj

from .conftest import login, publish

GUIA = das_guia(make_cnpj(201), "10/2026", "20/11/2026", "1.234,56")


def documents_db(config):
    return database("documents", config)


def past_the_window(config):
    """A moment past the digest window of everything published so far."""
    return utcnow() + timedelta(minutes=config.documents_digest_minutes, seconds=1)


def client_of_beta(config, w, name: str, *, new_documents: str = "email_and_portal",
                   due_guias: str = "email_and_portal") -> Person:
    """One more client user of Beta's company, with a login and these notification choices."""
    person = Person(uuid.uuid4(), f"{name.split()[0].lower()}@cliente.example", name)
    with users_db(config).begin() as s:
        firm = s.get(UsersFirm, w.beta.id)
        cu = users_services.register_client_user(
            s, firm=firm, name=name, email=person.email, company_ids=[w.beta_company.id], access="now",
            notifications={"new_documents": new_documents, "due_guias": due_guias})
    link_client(config, firm_id=w.beta.id, client_user_id=cu.id, identity_id=person.identity_id)
    return person


def publish_guia(config, w, name: str, *, vencimento: date | None = None, data: bytes = GUIA):
    meta = Metadata(competencia="10/2026", guia_tipo="DAS", vencimento=vencimento or date(2026, 11, 20),
                    valor=Decimal("1234.56"))
    return publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Fiscal", data=data,
                   name=name, by=w.bruno, meta=meta)


def publish_document(config, w, name: str):
    return publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Fiscal",
                   data=GUIA, name=name, by=w.bruno)


def notifications_of(config, person) -> list[models.Notification]:
    with documents_db(config).begin() as s:
        return list(s.scalars(select(models.Notification).where(models.Notification.identity_id == person.identity_id)
                              .order_by(models.Notification.created_at)))


def emails(config, template: str, to: str | None = None) -> list[Delivery]:
    """The e-mails the notifier sent (the dev mailbox: what would reach the SMTP server)."""
    with database("notifier", config).begin() as s:
        stmt = select(Delivery).where(Delivery.template == template).order_by(Delivery.created_at)
        if to:
            stmt = stmt.where(Delivery.recipient == to)
        return list(s.scalars(stmt))


# --------------------------------------------------------------------------- 1. fan-out

def test_each_client_is_told_as_they_chose(config, docworld, bus):
    w = docworld
    people = {channel: client_of_beta(config, w, f"{name} Cliente", new_documents=channel)
              for channel, name in [("none", "Nadia"), ("email", "Elias"), ("portal", "Paula"),
                                    ("email_and_portal", "Ambos")]}
    bus.pump()
    doc_id = publish_document(config, w, "Balancete outubro.pdf")
    bus.pump()
    told = {channel: [(n.kind, n.portal, n.emailed) for n in notifications_of(config, person)]
            for channel, person in people.items()}
    assert told == {"none": [], "email": [("new_document", False, False)], "portal": [("new_document", True, None)],
                    "email_and_portal": [("new_document", True, False)]}
    # Carlos (who chose nothing: E-mail e portal) sees the company too; a guia is of kind "guia"
    assert [(n.kind, n.document_id) for n in notifications_of(config, w.carlos)] == [("new_document", doc_id)]
    publish_guia(config, w, "DAS 10-2026.pdf")
    bus.pump()
    assert [n.kind for n in notifications_of(config, w.carlos)] == ["new_document", "guia"]
    # the same publication handled again (a redelivery under another message id) adds nothing
    from services.documents import notifications
    with documents_db(config).begin() as s:
        notifications.fan_out(s, document_id=doc_id)
    assert len(notifications_of(config, w.carlos)) == 2
    # Alfa's staff and Alfa's client side know nothing of Beta's document
    with documents_db(config).begin() as s:
        assert s.scalar(select(func.count()).select_from(models.Notification)
                        .where(models.Notification.firm_id == w.alfa.id)) == 0


# --------------------------------------------------------------------------- 2. one e-mail per batch

def test_three_hundred_guias_are_one_email_listing_them(config, docworld, bus):
    w = docworld
    for i in range(300):
        publish_guia(config, w, f"DAS {i:03d}.pdf", vencimento=date(2026, 11, 20) + timedelta(days=i % 5))
    bus.pump()
    assert consumers.send_digests(config) == 0  # within the window: more may come for the same e-mail
    assert consumers.send_digests(config, now=past_the_window(config)) == 1
    assert consumers.send_digests(config, now=past_the_window(config)) == 0  # nothing left to claim
    bus.pump()
    sent = emails(config, "documents_published")
    assert [d.recipient for d in sent] == [w.carlos.email]
    email = sent[0]
    assert email.subject == "Contabilidade Beta publicou 300 novos documentos para você"
    listed = [line for line in email.text_body.splitlines() if line.startswith("- DAS ")]
    assert len(listed) == 300
    assert "- DAS 000.pdf — Oficina Motor Forte Ltda — vence em 20/11/2026" in listed
    assert f"http://balcao.test/documentos/e/{w.beta.slug}/" in email.text_body
    # the notifier's report came back: the digest has the Message-ID and the acceptance time
    with documents_db(config).begin() as s:
        digest = s.scalars(select(models.Digest)).one()
        assert (digest.message_id, digest.failed) == (email.message_id, None) and digest.accepted_at is not None
        assert s.scalar(select(func.count()).select_from(models.Notification).where(
            models.Notification.digest_id == digest.id)) == 300
    # the e-mail request on the broker named no file: the list travelled sealed
    requested = [e for e in bus.of_type("notification.email_requested")
                 if e["payload"]["template"] == "documents_published"]
    assert len(requested) == 1 and "DAS 000.pdf" not in str(requested[0])


def test_two_digest_jobs_at_once_send_one_email(config, docworld, bus):
    w = docworld
    for i in range(3):
        publish_document(config, w, f"Folha {i}.pdf")
    bus.pump()
    moment = past_the_window(config)
    barrier, results = threading.Barrier(2), []

    def job():
        barrier.wait()
        results.append(consumers.send_digests(config, now=moment))

    threads = [threading.Thread(target=job) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1]
    bus.pump()
    sent = emails(config, "documents_published", to=w.carlos.email)
    assert len(sent) == 1 and "3 novos documentos" in sent[0].subject


def test_documents_published_after_a_digest_go_in_the_next_one(config, docworld, bus):
    w = docworld
    publish_document(config, w, "Primeiro.pdf")
    bus.pump()
    assert consumers.send_digests(config, now=past_the_window(config)) == 1
    publish_document(config, w, "Segundo.pdf")
    bus.pump()
    assert consumers.send_digests(config, now=past_the_window(config)) == 1
    bus.pump()
    bodies = [d.text_body for d in emails(config, "documents_published", to=w.carlos.email)]
    assert len(bodies) == 2 and "Primeiro.pdf" in bodies[0] and "Segundo.pdf" not in bodies[0]
    assert "Segundo.pdf" in bodies[1] and "Primeiro.pdf" not in bodies[1]


def test_a_person_who_chose_the_portal_only_gets_no_email(config, docworld, bus):
    w = docworld
    paula = client_of_beta(config, w, "Paula Portal", new_documents="portal")
    bus.pump()
    publish_document(config, w, "Contrato.pdf")
    bus.pump()
    consumers.send_digests(config, now=past_the_window(config))
    bus.pump()
    assert emails(config, "documents_published", to=paula.email) == []
    assert len(emails(config, "documents_published", to=w.carlos.email)) == 1


# --------------------------------------------------------------------------- 3. guias a vencer

def test_an_unopened_guia_is_reminded_once_before_it_falls_due(config, docworld, bus, browser_client):
    from services.documents.notifications import today_in_brasilia
    w = docworld
    today = today_in_brasilia()
    soon = publish_guia(config, w, "DAS vence logo.pdf", vencimento=today + timedelta(days=2))
    publish_guia(config, w, "DAS vence depois.pdf", vencimento=today + timedelta(days=10))
    opened = publish_guia(config, w, "DAS já aberta.pdf", vencimento=today + timedelta(days=1))
    publish_document(config, w, "Balancete.pdf")
    bus.pump()
    login(browser_client, config, w.carlos)
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{opened}/abrir").status_code == 200
    consumers.remind_due_guias(config)  # just published: announced minutes ago, not reminded yet
    consumers.send_digests(config)
    bus.pump()
    assert emails(config, "documents_due") == []
    tomorrow = utcnow() + timedelta(days=1)
    today = today_in_brasilia(tomorrow)
    for _ in range(2):  # the next day, the job runs again and again: once per person × guia
        consumers.remind_due_guias(config, now=tomorrow)
        consumers.send_digests(config, now=utcnow())  # within the new documents' window: only the reminder
        bus.pump()
    due = emails(config, "documents_due", to=w.carlos.email)
    assert len(due) == 1
    assert due[0].subject == "Guia a vencer — Contabilidade Beta"
    assert "DAS vence logo.pdf" in due[0].text_body and "nos próximos 3 dias" in due[0].text_body
    assert f"vence em {today + timedelta(days=1):%d/%m/%Y}" in due[0].text_body
    assert "DAS vence depois.pdf" not in due[0].text_body and "DAS já aberta.pdf" not in due[0].text_body
    assert emails(config, "documents_published") == []
    assert [n.document_id for n in notifications_of(config, w.carlos) if n.kind == "due_guia"] == [soon]
    # the firm's N days: with 10, the later guia is reminded too (once)
    with documents_db(config).begin() as s:
        s.get(models.Firm, w.beta.id).due_reminder_days = 10
    consumers.remind_due_guias(config, now=tomorrow)
    consumers.remind_due_guias(config, now=tomorrow)
    consumers.send_digests(config)
    bus.pump()
    due = emails(config, "documents_due", to=w.carlos.email)
    assert len(due) == 2 and "DAS vence depois.pdf" in due[1].text_body and "DAS vence logo" not in due[1].text_body


def test_a_person_who_wants_no_due_reminders_gets_none(config, docworld, bus):
    from services.documents.notifications import today_in_brasilia
    w = docworld
    nadia = client_of_beta(config, w, "Nadia Nenhuma", new_documents="portal", due_guias="none")
    bus.pump()
    publish_guia(config, w, "DAS.pdf", vencimento=today_in_brasilia() + timedelta(days=2))
    bus.pump()
    consumers.remind_due_guias(config, now=utcnow() + timedelta(days=1))
    consumers.send_digests(config)
    bus.pump()
    assert [n.kind for n in notifications_of(config, nadia)] == ["guia"]
    assert emails(config, "documents_due", to=nadia.email) == []
    assert len(emails(config, "documents_due", to=w.carlos.email)) == 1


# --------------------------------------------------------------------------- 4. the bell and the counts

def _selector(html: str) -> str:
    start = html.index('<select id="firm-select"')
    return text_of(html[start:html.index("</select>", start)])


def test_the_bell_and_both_selectors_count_unread_notices(config, docworld, bus, browser_client):
    w = docworld
    first = publish_guia(config, w, "DAS 10-2026.pdf")
    publish_document(config, w, "Balancete.pdf")
    publish_document(config, w, "Folha.pdf")
    bus.pump()
    login(browser_client, config, w.carlos)
    home = browser_client.get(f"/documentos/e/{w.beta.slug}/").text
    assert "3 avisos não lidos" in home
    assert "Contabilidade Beta (3)" in _selector(home) and "Contabilidade Alfa (" not in _selector(home)
    # the users service's pages show the same count (its projection, after the events flowed)
    users_home = browser_client.get(f"/e/{w.alfa.slug}/").text
    assert "Contabilidade Beta (3)" in _selector(users_home)
    # the avisos page lists them, newest first, each linking to its document
    page = browser_client.get(f"/documentos/e/{w.beta.slug}/avisos").text
    assert page.index("Folha.pdf") < page.index("Balancete.pdf") < page.index("DAS 10-2026.pdf")
    assert f"/documentos/e/{w.beta.slug}/documentos/{first}/abrir" in page
    # opening one marks its notice read: at once on the documents pages, after the events on users'
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{first}/abrir").status_code == 200
    home = browser_client.get(f"/documentos/e/{w.beta.slug}/").text
    assert "2 avisos não lidos" in home and "Contabilidade Beta (2)" in _selector(home)
    bus.pump()
    assert "Contabilidade Beta (2)" in _selector(browser_client.get(f"/e/{w.alfa.slug}/").text)
    # Marcar todas como lidas (a POST with its CSRF token)
    page = browser_client.get(f"/documentos/e/{w.beta.slug}/avisos").text
    refused = browser_client.post(f"/documentos/e/{w.beta.slug}/avisos/marcar-lidas", data={})
    assert refused.status_code == 400
    done = browser_client.post(f"/documentos/e/{w.beta.slug}/avisos/marcar-lidas",
                               data={"csrf_token": csrf_token(page)}, follow_redirects=True)
    assert done.status_code == 200 and "Nenhum aviso não lido." in done.text
    assert "Contabilidade Beta (" not in _selector(done.text) and "avisos não lidos" not in done.text
    bus.pump()
    assert "Contabilidade Beta (" not in _selector(browser_client.get(f"/e/{w.alfa.slug}/").text)


def test_a_company_lost_takes_its_notices_out_of_the_count(config, docworld, bus, browser_client):
    w = docworld
    publish_document(config, w, "Balancete.pdf")
    bus.pump()
    login(browser_client, config, w.carlos)
    assert "Contabilidade Beta (1)" in _selector(browser_client.get(f"/e/{w.alfa.slug}/").text)
    with users_db(config).begin() as s:
        users_services.deactivate_company(s, firm=s.get(UsersFirm, w.beta.id),
                                          company=s.get(UsersCompany, w.beta_company.id))
    bus.pump()
    assert "Contabilidade Beta (" not in _selector(browser_client.get(f"/documentos/e/{w.beta.slug}/").text)
    assert "Contabilidade Beta (" not in _selector(browser_client.get(f"/e/{w.alfa.slug}/").text)
    assert "Balancete.pdf" not in browser_client.get(f"/documentos/e/{w.beta.slug}/avisos").text


def test_another_persons_notices_are_not_listed(config, docworld, bus, browser_client):
    w = docworld
    paula = client_of_beta(config, w, "Paula Portal", new_documents="portal")
    bus.pump()
    publish_document(config, w, "Balancete.pdf")
    bus.pump()
    login(browser_client, config, paula)
    page = browser_client.get(f"/documentos/e/{w.beta.slug}/avisos").text
    assert "Balancete.pdf" in page and "1 aviso não lido" in page
    # Paula marks hers read: Carlos's stay unread
    browser_client.post(f"/documentos/e/{w.beta.slug}/avisos/marcar-lidas", data={"csrf_token": csrf_token(page)})
    login(browser_client, config, w.carlos)
    assert "1 aviso não lido" in browser_client.get(f"/documentos/e/{w.beta.slug}/avisos").text
    # Alfa's avisos page is Carlos's Alfa notices only (none); Ana (Alfa) has no page at Beta
    assert "Balancete.pdf" not in browser_client.get(f"/documentos/e/{w.alfa.slug}/avisos").text
    login(browser_client, config, w.ana)
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/avisos").status_code == 404


# --------------------------------------------------------------------------- 5. retract

def test_a_retracted_document_is_announced_to_who_opened_it_and_its_pending_email_dropped(
        config, docworld, bus, browser_client):
    w = docworld
    paula = client_of_beta(config, w, "Paula Portal", new_documents="portal")
    bus.pump()
    seen = publish_document(config, w, "Balancete errado.pdf")
    unseen = publish_document(config, w, "Folha errada.pdf")
    bus.pump()
    login(browser_client, config, w.carlos)
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{seen}/abrir").status_code == 200
    bruno = Actor(w.bruno.identity_id, w.bruno.name, "127.0.0.1")
    with documents_db(config).begin() as s:
        for doc_id in (seen, unseen):
            retract(s, s.get(models.Document, doc_id), actor=bruno)
    bus.pump()
    # Carlos had opened the first: a notice says it was retracted; Paula, who had not, gets none
    assert [(n.kind, n.document_id) for n in notifications_of(config, w.carlos) if n.read_at is None] == [
        ("retracted", seen)]
    assert [n.kind for n in notifications_of(config, paula) if n.kind == "retracted"] == []
    page = browser_client.get(f"/documentos/e/{w.beta.slug}/avisos").text
    assert "O escritório retirou o documento Balancete errado.pdf." in page and "Folha errada.pdf" not in page
    assert "1 aviso não lido" in page
    bus.pump()
    assert "Contabilidade Beta (1)" in _selector(browser_client.get(f"/e/{w.alfa.slug}/").text)
    # the e-mail that was waiting for the window is not sent
    assert consumers.send_digests(config, now=past_the_window(config)) == 0
    bus.pump()
    assert emails(config, "documents_published") == []
    login(browser_client, config, paula)
    assert "Contabilidade Beta (" not in _selector(browser_client.get(f"/e/{w.beta.slug}/").text)


def test_the_header_counts_up_to_99_plus(config, docworld, bus, browser_client):
    """The bell and the Escritório selector count a firm's unread notices up to 99 and then say
    "99+" (the header's work stays bounded however many notices wait)."""
    from testsupport.guias import text_pdf

    from .conftest import login, publish
    w = docworld
    for i in range(101):
        publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Fiscal",
                data=text_pdf(f"Documento {i}"), name=f"documento {i:03d}.pdf", by=w.bruno)
    bus.pump()
    login(browser_client, config, w.carlos)
    page = browser_client.get(f"/documentos/e/{w.beta.slug}/").get_data(as_text=True)
    assert "Contabilidade Beta (99+)" in page and "Mais de 99 avisos não lidos" in page
