"""Issue 9's acceptance, as one story in a real browser, on whichever stack the `product` fixture
starts (the distributed one behind nginx when RabbitMQ and PostgreSQL are given, else the embedded
mode); e-mail goes over SMTP to the test's own server.

Bruno, the only Administrador of Contabilidade Beta, creates two companies in Configurações ›
Empresas and imports twenty from a CSV; adds the department Trabalhista; imports two client users,
one of each company. He invites Carlos — already a client user of Contabilidade Aurora, with a
login — to the team as a Colaborador whose carteira is Pereira Consultoria: the invitation arrives
in the mailbox, Carlos follows it, the page says he "já tem acesso", Senha → Vincular Contas.
Carlos logs in again on his phone, picks Beta in the Escritório selector (Aurora comes first) and
sees Pereira's client user only; Mercado's is a 404 to him. Bruno registers Helena through the five
steps of Novo Usuário with choices that are not the defaults, and her page shows exactly those
departments, levels, permissions and notifications (Carlos now sees her too: she is of Pereira).
Bruno then tries to make himself a Colaborador: the page refuses with its message and he stays
an Administrador.

Every page the story opens is checked by axe-core and for overflow (Carlos's part at 360 px).
Finally, the events of the story's changes: one per change in the users service's outbox, each
read by the catalogue's consumer side, and — on RabbitMQ — each published on the events exchange
exactly once (the broker's firehose)."""
from __future__ import annotations

import json
import re
import uuid
from collections import Counter

import pytest
from playwright.sync_api import expect
from stdnum.br import cnpj as cnpj_mod

from services.common import events
from tests.conftest import Staff, keep_pages, link_in, wait_until
from tests.e2e.test_phone_and_accessibility import PHONE, PhoneCheck
from tests.e2e.test_team_browser import axe, login, selector_options  # noqa: F401 (axe: the fixture)

pytestmark = pytest.mark.browser

BRUNO = ("Bruno Lima", "bruno@beta-aceite.example", "Bruno-Beta-Senha-37")
CARLOS = ("Carlos Pereira", "carlos@cliente-aceite.example", "Carlos-Senha-Forte-58")
HELENA = ("Helena Dias", "helena@cliente-aceite.example")
PEREIRA, MERCADO = "Pereira Consultoria Ltda", "Mercado Bom Preço Ltda"
FERNANDA, GUSTAVO = ("Fernanda Prado", "fernanda@cliente-aceite.example"), ("Gustavo Reis", "gustavo@cliente-aceite.example")
DEFAULT_DEPARTMENTS = ("Contábil", "Fiscal", "Pessoal", "Societário", "Financeiro")
STORY_EVENTS = ("company.created", "department.created", "staff_member.changed", "client_user.access_changed")


def cnpj(base12: str) -> str:
    return base12 + cnpj_mod.calc_check_digits(base12)


def detail(page, term: str) -> list[str]:
    """The lines of a <dl class="details"> entry (a list's items, or the single value)."""
    dd = page.locator(f"dl.details dt:text-is('{term}') + dd")
    items = dd.locator("li")
    return [t.strip() for t in (items.all_inner_texts() if items.count() else dd.all_inner_texts())]


def listed_names(page) -> list[str]:
    """The first column of the page's table (client users' or companies' names)."""
    return sorted(t.strip() for t in page.locator("tbody tr td:first-child").all_inner_texts())


def upload(page, name: str, body: str) -> None:
    page.get_by_label("Arquivo").set_input_files(files=[{"name": name, "mimeType": "text/csv",
                                                         "buffer": body.encode()}])


def test_issue_9_acceptance(product, mailbox, browser, axe, broker_tap, artifacts):  # noqa: F811 (axe)
    url, check = product.url, PhoneCheck(axe)
    # Carlos is a client user of another firm, Contabilidade Aurora (named to come before Beta in
    # his Escritório selector), registered through its invitation
    aurora = Staff(product, "Aurora")
    sent = mailbox.count()
    aurora.invite(1, emails=[CARLOS[1]])
    aurora_link = link_in(mailbox.wait_for(to=CARLOS[1], subject_contains="Contabilidade Aurora", after=sent),
                          "/convite/")
    beta = product.cli("create-firm", "--name", "Contabilidade Beta", "--cnpj", cnpj("445556660001"), "--admin-name",
                       BRUNO[0], "--admin-email", BRUNO[1], "--admin-password", BRUNO[2]).strip().splitlines()[-1]
    settings = f"{url}/e/{beta}/configuracoes"
    bruno_ctx, carlos_ctx = browser.new_context(), browser.new_context(viewport=PHONE)
    bruno, carlos = bruno_ctx.new_page(), carlos_ctx.new_page()
    try:
        carlos.goto(aurora_link)
        check(carlos, "Convite de Aurora: registro", signed_in=False)
        carlos.get_by_label("Senha", exact=True).fill(CARLOS[2])
        carlos.get_by_label("Confirme a senha", exact=True).fill(CARLOS[2])
        carlos.get_by_role("button", name="Registrar").click()
        carlos.wait_for_url(re.compile(rf"/e/{aurora.slug}/$"), timeout=45_000)

        # Bruno: two companies through Nova empresa
        bruno.goto(url + "/auth/entrar")
        check(bruno, "Entrar", signed_in=False)
        login(bruno, url, BRUNO[1], BRUNO[2], "Contabilidade Beta")
        check(bruno, "Início do escritório (administrador)", signed_in=True)
        bruno.get_by_role("link", name="Configurações › Empresas").click()
        expect(bruno.get_by_role("heading", name="Empresas")).to_be_visible()
        check(bruno, "Empresas (vazia)", signed_in=True)
        for name, base in ((PEREIRA, "345678900001"), (MERCADO, "456789010001")):
            bruno.get_by_role("link", name="Nova empresa").click()
            check(bruno, f"Nova empresa ({name})", signed_in=True)
            bruno.get_by_label("Razão social").fill(name)
            bruno.get_by_label("CNPJ ou CPF").fill(cnpj_mod.format(cnpj(base)))
            bruno.get_by_role("button", name="Cadastrar empresa").click()
            expect(bruno.get_by_text(f"Empresa {name} cadastrada.")).to_be_visible()
            check(bruno, f"Empresas ({name} cadastrada)", signed_in=True)

        # twenty from a CSV: the preview, the background job, its report
        bruno.get_by_role("link", name="Importar empresas").click()
        check(bruno, "Importar empresas", signed_in=True)
        upload(bruno, "empresas.csv", "Razão social;Nome fantasia;CNPJ/CPF;Código\n" + "".join(
            f"Empresa Importada {i:02d} Ltda;Importada {i};{cnpj_mod.format(cnpj(f'{800000 + i:08d}0001'))};IMP-{i}\n"
            for i in range(20)))
        bruno.get_by_role("button", name="Ver prévia").click()
        check(bruno, "Prévia da importação de empresas", signed_in=True)
        bruno.get_by_role("button", name="Importar 20 empresas válidas").click()
        expect(bruno.get_by_text("Importação concluída: 20 empresas cadastradas, 0 linhas não importadas.")
               ).to_be_visible(timeout=60_000)
        check(bruno, "Relatório da importação de empresas", signed_in=True)
        bruno.goto(f"{settings}/empresas?q=Importada")
        assert bruno.locator("tbody tr").count() == 20
        check(bruno, "Empresas (busca)", signed_in=True)

        # a department
        bruno.goto(f"{settings}/departamentos")
        check(bruno, "Departamentos", signed_in=True)
        bruno.get_by_label("Nome", exact=True).fill("Trabalhista")
        bruno.get_by_role("button", name="Adicionar departamento").click()
        expect(bruno.get_by_text("Departamento Trabalhista criado.")).to_be_visible()
        check(bruno, "Departamentos (Trabalhista criado)", signed_in=True)
        assert bruno.locator("tbody input[name=name]").evaluate_all("els => els.map(e => e.value)") == [
            *DEFAULT_DEPARTMENTS, "Trabalhista"]

        # a client user of each company, so that a carteira has something to leave out
        bruno.goto(f"{settings}/usuarios-de-clientes/importar")
        check(bruno, "Importar usuários", signed_in=True)
        upload(bruno, "clientes.csv", "Nome;CPF;Telefone;E-mail;Empresas\n"
               f"{FERNANDA[0]};;;{FERNANDA[1]};{PEREIRA}\n{GUSTAVO[0]};;;{GUSTAVO[1]};{MERCADO}\n")
        bruno.get_by_role("button", name="Ver prévia").click()
        check(bruno, "Prévia da importação de usuários", signed_in=True)
        bruno.get_by_role("button", name="Importar 2 usuários válidos").click()
        expect(bruno.get_by_text("Importação concluída")).to_be_visible(timeout=60_000)
        check(bruno, "Relatório da importação de usuários", signed_in=True)

        # Carlos, a client of Aurora, invited to Beta's team: Colaborador, carteira Pereira
        bruno.goto(f"{settings}/equipe")
        check(bruno, "Equipe", signed_in=True)
        bruno.get_by_role("link", name="Convidar colaborador").click()
        check(bruno, "Convidar colaborador", signed_in=True)
        bruno.get_by_label("Nome", exact=True).fill(CARLOS[0])
        bruno.get_by_label("E-mail", exact=True).fill(CARLOS[1])
        bruno.get_by_label("Colaborador", exact=True).check()
        bruno.get_by_label("Trabalhista", exact=True).check()
        bruno.get_by_label(PEREIRA, exact=True).check()
        sent = mailbox.count()
        bruno.get_by_role("button", name="Enviar convite").click()
        expect(bruno.get_by_text(f"Convite enviado para {CARLOS[1]}.")).to_be_visible()
        check(bruno, "Membro da equipe (convidado)", signed_in=True)
        assert detail(bruno, "Carteira") == [PEREIRA]

        message = mailbox.wait_for(to=CARLOS[1], subject_contains="convidou você para a equipe", after=sent)
        assert "Contabilidade Beta" in str(message["Subject"])
        carlos.goto(link_in(message, "/convite/"))
        expect(carlos.get_by_text("já tem acesso")).to_be_visible()
        check(carlos, "Convite da equipe: já tem acesso", signed_in=False)
        carlos.get_by_label("Senha", exact=True).fill(CARLOS[2])
        carlos.get_by_role("button", name="Vincular Contas").click()
        carlos.wait_for_url(re.compile(rf"/e/{beta}/$"), timeout=45_000)
        check(carlos, "Início de Beta depois de Vincular Contas", signed_in=True)
        carlos.get_by_role("button", name="Sair").click()
        carlos.wait_for_load_state()

        # Carlos logs in on his phone: Aurora comes first, the Escritório selector takes him to Beta
        login(carlos, url, CARLOS[1], CARLOS[2], re.compile("Contabilidade (Aurora|Beta)"))
        assert selector_options(carlos) == ["Contabilidade Aurora", "Contabilidade Beta"]
        if f"/e/{beta}/" not in carlos.url:
            check(carlos, "Início de Aurora (cliente)", signed_in=True)
            carlos.get_by_label("Escritório").select_option(label="Contabilidade Beta")
            carlos.wait_for_url(re.compile(rf"/e/{beta}/$"))
        expect(carlos.get_by_role("heading", name="Contabilidade Beta")).to_be_visible()
        check(carlos, "Início de Beta (colaborador)", signed_in=True)
        carlos.get_by_role("link", name="Configurações › Usuários de Clientes").click()
        expect(carlos.get_by_role("heading", name="Usuários de Clientes")).to_be_visible()
        assert listed_names(carlos) == [FERNANDA[0]]
        check(carlos, "Usuários de Clientes (colaborador)", signed_in=True)
        carlos.goto(f"{settings}/empresas")
        assert listed_names(carlos) == [PEREIRA]
        check(carlos, "Empresas (colaborador)", signed_in=True)
        gustavo_id = uuid.UUID(str(product.scalar("users", "SELECT id FROM client_users WHERE email = :e",
                                                  e=GUSTAVO[1])))
        assert carlos.goto(f"{settings}/usuarios-de-clientes/{gustavo_id}").status == 404
        check(carlos, "Usuário fora da carteira (404)", signed_in=True)

        # Bruno registers Helena through the five steps, with choices that are not the defaults
        bruno.goto(f"{settings}/usuarios-de-clientes")
        check(bruno, "Usuários de Clientes (administrador)", signed_in=True)
        bruno.get_by_role("link", name="Novo Usuário").click()
        expect(bruno.get_by_text("Passo 1 de 5: Geral")).to_be_visible()
        check(bruno, "Novo Usuário, geral", signed_in=True)
        bruno.get_by_label("Nome", exact=True).fill(HELENA[0])
        bruno.get_by_label("E-mail de contato", exact=True).fill(HELENA[1])
        bruno.get_by_role("button", name="Ativar").click()
        # (a modal dialog: the page behind it, Sair included, is inert and may be scrolled away)
        check(bruno, "Novo Usuário, diálogo Ativar", signed_in=False)
        bruno.get_by_role("button", name="Envie agora").click()
        bruno.get_by_role("button", name="Avançar").click()
        expect(bruno.get_by_text("Passo 2 de 5: Departamentos")).to_be_visible()
        check(bruno, "Novo Usuário, departamentos", signed_in=True)
        for name in ("Contábil", "Pessoal", "Societário", "Financeiro"):  # default: every one, Revisor
            bruno.get_by_label(name, exact=True).uncheck()
        bruno.get_by_label("Nível de acesso em Fiscal", exact=True).select_option(label="Contribuinte")
        bruno.get_by_label("Nível de acesso em Trabalhista", exact=True).select_option(label="Proprietário")
        bruno.get_by_role("button", name="Avançar").click()
        expect(bruno.get_by_text("Passo 3 de 5: Empresas")).to_be_visible()
        check(bruno, "Novo Usuário, empresas", signed_in=True)
        bruno.get_by_label(PEREIRA, exact=True).check()
        bruno.get_by_role("button", name="Avançar").click()
        expect(bruno.get_by_text("Passo 4 de 5: Permissões")).to_be_visible()
        check(bruno, "Novo Usuário, permissões", signed_in=True)
        expect(bruno.get_by_label("Enviar documentos ao escritório", exact=True)).to_be_checked()  # a Contribuinte
        bruno.get_by_label("Baixar documentos", exact=True).uncheck()  # follows her guias without downloading
        bruno.get_by_role("button", name="Avançar").click()
        expect(bruno.get_by_text("Passo 5 de 5: Notificações")).to_be_visible()
        check(bruno, "Novo Usuário, notificações", signed_in=True)
        for kind, channel in (("Novos documentos", "E-mail"), ("Guias a vencer", "Nenhuma"),
                              ("Avisos do escritório", "Portal")):
            bruno.get_by_role("group", name=kind).get_by_label(channel, exact=True).check()
        bruno.get_by_role("button", name="Concluir").click()
        expect(bruno.get_by_text("Usuário registrado")).to_be_visible()
        check(bruno, "Página do usuário (Helena)", signed_in=True)
        expect(bruno.get_by_role("heading", name=HELENA[0])).to_be_visible()
        assert detail(bruno, "Departamentos") == ["Fiscal — Contribuinte", "Trabalhista — Proprietário"]
        assert detail(bruno, "Empresas") == [PEREIRA]
        assert detail(bruno, "Permissões") == ["Enviar documentos ao escritório"]
        assert detail(bruno, "Notificações") == ["Novos documentos: E-mail", "Guias a vencer: Nenhuma",
                                                  "Avisos do escritório: Portal"]
        mailbox.wait_for(to=HELENA[1], subject_contains="Contabilidade Beta")  # Envie agora: sent at Concluir
        carlos.goto(f"{settings}/usuarios-de-clientes")  # of Pereira: in Carlos's carteira
        assert listed_names(carlos) == [FERNANDA[0], HELENA[0]]

        # the last Administrador cannot make himself a Colaborador
        bruno.goto(f"{settings}/equipe")
        bruno.get_by_role("link", name=BRUNO[0]).click()
        check(bruno, "Membro da equipe (o próprio administrador)", signed_in=True)
        bruno.get_by_role("link", name="Editar").click()
        check(bruno, "Editar membro da equipe", signed_in=True)
        bruno.get_by_label("Colaborador", exact=True).check()
        bruno.get_by_role("button", name="Salvar").click()
        expect(bruno.get_by_text("Você é o único Administrador ativo do escritório: torne outra pessoa "
                                 "Administrador antes de mudar o seu próprio papel.")).to_be_visible()
        check(bruno, "Editar (último administrador, recusado)", signed_in=True)
        bruno.goto(f"{settings}/equipe")
        bruno.get_by_role("link", name=BRUNO[0]).click()
        assert detail(bruno, "Papel") == ["Administrador"]
        assert product.scalar("users", "SELECT role FROM staff_members WHERE email = :e", e=BRUNO[1]) == "admin"

        assert not check.problems, "pages with problems:\n  " + "\n  ".join(check.problems)
        assert len(check.visited) >= 35, check.visited
    except BaseException:
        keep_pages(artifacts, bruno=bruno, carlos=carlos)
        raise
    finally:
        bruno_ctx.close()
        carlos_ctx.close()

    # The story's events: one per change, each read by the catalogue's consumer side
    beta_id = uuid.UUID(str(product.scalar("users", "SELECT id FROM firms WHERE slug = :s", s=beta)))

    def beta_events() -> list[tuple[dict, bool]]:
        """(envelope, published) of each event of the story's kinds about Beta in the users outbox."""
        rows = product.rows("users", "SELECT envelope, published_at FROM outbox ORDER BY seq")
        found = [(e if isinstance(e, dict) else json.loads(e), at is not None) for e, at in rows]
        return [(e, published) for e, published in found
                if e["type"] in STORY_EVENTS and e["payload"]["firm_id"] == str(beta_id)]

    def all_published() -> list[dict] | None:
        found = beta_events()
        return [e for e, _ in found] if all(published for _, published in found) else None

    ours = wait_until(all_published, timeout=30, message="the story's events were not all published",
                      state=lambda: [e["type"] for e, published in beta_events() if not published])
    assert Counter(e["type"] for e in ours) == {
        "company.created": 22,                 # 2 + 20 imported
        "department.created": 6,               # the five of a new firm + Trabalhista
        "staff_member.changed": 3,             # Bruno (create-firm); Carlos invited, Carlos linked
        "client_user.access_changed": 3,       # Fernanda, Gustavo, Helena created (none has linked yet)
    }
    for envelope in ours:
        _envelope, payload = events.parse_envelope(json.loads(json.dumps(envelope)))
        assert payload["firm_id"] == beta_id
    helena_id = uuid.UUID(str(product.scalar("users", "SELECT id FROM client_users WHERE email = :e", e=HELENA[1])))
    [helena] = [events.parse_envelope(e)[1] for e in ours if e["type"] == "client_user.access_changed"
                and e["payload"]["client_user_id"] == str(helena_id)]
    assert sorted(a["level"] for a in helena["departments"]) == ["contributor", "owner"]
    assert helena["permissions"] == {"upload": True, "download": False}
    assert helena["notifications"] == {"new_documents": "email", "due_guias": "none", "firm_notices": "portal"}
    if broker_tap is not None:  # on RabbitMQ: each went out on the events exchange exactly once
        seen: list[dict] = []

        def published_once() -> bool:
            seen.extend(broker_tap())
            times = Counter(e["id"] for m in seen if m["trace"].startswith("publish.")
                            and m["exchange"] == events.EXCHANGE for e in [json.loads(m["body"])])
            return all(times[e["id"]] == 1 for e in ours)

        wait_until(published_once, timeout=30, message="an event of the story was not published exactly once")
