"""A contract test per event of the firm's settings (Empresas, Departamentos, a client user's
access, Equipe): each change a person makes through the pages — or the invitation chain makes —
records its event exactly once, a change that changes nothing or is refused records none, and
every payload, as it travels (JSON), is read by the consumer side of the catalogue: the
`parse_envelope` every consumer's handle_message applies before its handler (the catalogue's
marshmallow schema at the version the producer wrote, unknown fields ignored), for each consumer
the catalogue names — none yet: the documents service will be the first — and for the one to
come. No payload carries the name or the e-mail of a person.

The outbox is what the relay publishes (services/common/tests/test_messaging.py: outbox → broker
→ handler, exactly once); tests/e2e/test_issue9_acceptance.py checks the same events on RabbitMQ."""
from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from services.common import events
from services.common.config import SERVICES
from services.common.runtime import service_module
from services.users import consumers, models, queries
from testsupport import csrf_token, csv_bytes

from .conftest import form_fields, link_client, login, make_cnpj, outbox_events, users_db

# Names and e-mails of people the scenarios type: none may travel in these events.
NAMED_PERSON_FIELDS = {"client_user.access_changed": ("name", "email"), "staff_member.changed": ("name", "email")}
PEOPLE = ("Paula Reis", "paula@alfa.com.br", "Gil Souza", "gil@example.com", "Hugo Lima", "hugo@example.com",
          "Carlos Souza", "carlos@example.com", "Ana Lima", "ana@alfa.com.br")


class Firm:
    """Ana, Alfa's admin, in a browser: the pages she posts to and what she reads back."""

    def __init__(self, client, config, world):
        self.client, self.config, self.world = client, config, world
        self.base = f"/e/{world.alfa.slug}/configuracoes"
        login(client, config, world.ana)
        self.token = csrf_token(client.get(self.base + "/empresas").get_data(as_text=True))

    def post(self, path: str, data: dict | None = None, *, status: int = 303):
        response = self.client.post(self.base + path, data={"csrf_token": self.token, **(data or {})})
        assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:500])
        return response

    def submit(self, page: str, change: Callable | None = None, *, to: str | None = None, status: int = 303):
        """The page's form as a browser submits it, after `change(fields)`."""
        fields = form_fields(self.client.get(self.base + page).get_data(as_text=True), to or page)
        if change:
            change(fields)
        response = self.client.post(self.base + (to or page), data=fields)
        assert response.status_code == status, (page, response.status_code, response.get_data(as_text=True)[:500])
        return response

    def upload(self, path: str, rows: list[list[str]]) -> None:
        """An import: the file, the preview's confirmation, the background job."""
        response = self.client.post(self.base + path, content_type="multipart/form-data", data={
            "csrf_token": self.token, "arquivo": (io.BytesIO(csv_bytes(rows)), "arquivo.csv")})
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        assert self.client.post(response.headers["Location"], data={"csrf_token": self.token}).status_code == 303
        while consumers.process_imports(self.config):
            pass

    def department(self, name: str) -> models.Department:
        with users_db(self.config).begin() as s:
            return next(d for d in queries.departments_of(s, firm=self.world.alfa) if d.name == name)

    def created(self, model, **where):
        with users_db(self.config).begin() as s:
            return s.query(model).filter_by(firm_id=self.world.alfa.id, **where).one()


# Each scenario acts, then yields (what it did, how many events of its type that must have recorded).
Scenario = Callable[[Firm], Iterator[tuple[str, int]]]


def _company_form(name: str, document: str, **more) -> dict:
    return {"name": name, "trade_name": "", "document": document, "code": "", **more}


def company_created(f: Firm):
    f.post("/empresas/nova", _company_form("Loja Nova Ltda", make_cnpj(501)))
    yield "Nova empresa", 1
    f.post("/empresas/nova", _company_form("Loja Repetida Ltda", make_cnpj(501)), status=422)
    yield "Nova empresa with a CNPJ the firm has (refused)", 0
    f.upload("/empresas/importar", [["Razão social", "Nome fantasia", "CNPJ/CPF", "Código"],
                                    ["Importada Um Ltda", "", make_cnpj(502), ""],
                                    ["Importada Dois Ltda", "", make_cnpj(503), ""],
                                    ["Importada Repetida Ltda", "", make_cnpj(501), ""]])
    yield "an import of two new companies and one the firm has", 2


def company_changed(f: Firm):
    page = f"/empresas/{f.world.alfa_company.id}/editar"
    f.submit(page, lambda form: form.__setitem__("name", "Padaria Pão Quente e Doces Ltda"))
    yield "Editar: a new razão social", 1
    f.submit(page)
    yield "Editar, saved as it is", 0
    f.submit(page, lambda form: form.__setitem__("document", make_cnpj(102)), status=422)
    yield "Editar with another company's CNPJ (refused)", 0


def company_deactivated(f: Firm):
    f.post(f"/empresas/{f.world.alfa_company.id}/desativar")
    yield "Desativar", 1
    f.post(f"/empresas/{f.world.alfa_company.id}/desativar")
    yield "Desativar again", 0


def company_reactivated(f: Firm):
    f.post(f"/empresas/{f.world.alfa_company.id}/desativar")
    f.post(f"/empresas/{f.world.alfa_company.id}/reativar")
    yield "Reativar", 1
    f.post(f"/empresas/{f.world.alfa_company.id}/reativar")
    yield "Reativar again", 0


def department_created(f: Firm):
    f.post("/departamentos", {"name": "Trabalhista"})
    yield "Adicionar departamento", 1
    f.post("/departamentos", {"name": "trabalhista"}, status=422)
    yield "a name the firm has (refused)", 0


def department_renamed(f: Firm):
    fiscal = f.department("Fiscal").id
    f.post(f"/departamentos/{fiscal}/renomear", {"name": "Fiscal e Tributário"})
    yield "Renomear", 1
    f.post(f"/departamentos/{fiscal}/renomear", {"name": "Fiscal e Tributário"})
    yield "Renomear to the same name", 0
    f.post(f"/departamentos/{fiscal}/renomear", {"name": "Pessoal"}, status=422)
    yield "Renomear to another department's name (refused)", 0


def department_removed(f: Firm):
    pessoal, contabil = f.department("Pessoal").id, f.department("Contábil").id
    f.post(f"/departamentos/{pessoal}/excluir", {"move_to": str(pessoal)}, status=422)
    yield "Migrar e excluir into itself (refused)", 0
    f.post(f"/departamentos/{pessoal}/excluir", {"move_to": str(contabil)})
    yield "Migrar e excluir", 1
    f.post(f"/departamentos/{pessoal}/excluir", {"move_to": str(contabil)}, status=404)
    yield "the removed department again", 0


def client_user_access_changed(f: Firm):
    fiscal, contabil = f.department("Fiscal").id, f.department("Contábil").id

    def wizard(form):
        for key, value in {"step": "notificacoes", "name": "Gil Souza", "email": "gil@example.com", "access": "now",
                           "departments_set": "1", "permissions_set": "1", f"level_{fiscal}": "owner",
                           "notify_new_documents": "portal"}.items():
            form[key] = value  # (a MultiDict's update() would add a second value)
        form.setlist("department_ids", [str(fiscal)])
        form.setlist("company_ids", [str(f.world.alfa_company.id)])
        form.setlist("permissions", ["upload"])
    f.submit("/usuarios-de-clientes/novo", wizard)
    yield "Novo Usuário, Concluir", 1
    gil = f.created(models.ClientUser, email="gil@example.com").id
    link_client(f.config, firm_id=f.world.alfa.id, client_user_id=gil, identity_id=uuid.uuid4())
    yield "the invitation accepted (the login it applies to)", 1
    edit = f"/usuarios-de-clientes/{gil}/editar"
    f.submit(edit, lambda form: form.__setitem__(f"level_{fiscal}", "reviewer"))
    yield "Editar: a level", 1
    f.submit(edit, lambda form: form.__setitem__("name", "Gil Souza Filho"))
    yield "Editar: the name only (the documents service shows it: minor 1)", 1
    f.submit(edit, lambda form: form.__setitem__("phone", ""))
    yield "Editar, saved as it is", 0
    f.submit(edit, lambda form: form.setlist("department_ids", []), status=422)
    yield "Editar without a department (refused)", 0
    f.post(f"/departamentos/{fiscal}/excluir", {"move_to": str(contabil)})
    moved = {e["payload"]["client_user_id"] for e in outbox_events(f.config, "client_user.access_changed")[-2:]}
    assert moved == {str(gil), str(f.world.carlos_at_alfa.id)}
    yield "Fiscal removed (Migrar e excluir): the access of both users of Fiscal moved, one event each", 2
    f.upload("/usuarios-de-clientes/importar", [["Nome", "CPF", "Telefone", "E-mail", "Empresas", "Departamentos",
                                                 "Nível"],
                                                ["Hugo Lima", "", "", "hugo@example.com", "Padaria Pão Quente Ltda",
                                                 "Contábil", "Contribuinte"]])
    yield "an import of one client user", 1
    for action, expected in (("desativar", 1), ("reativar", 1), ("excluir", 1)):
        f.post(f"/usuarios-de-clientes/{gil}/{action}")
        yield f"{action.capitalize()} (the status travels: minor 1)", expected


def staff_member_changed(f: Firm):
    fiscal = str(f.department("Fiscal").id)
    f.post("/equipe/convidar", {"name": "Paula Reis", "email": "paula@alfa.com.br", "role": "staff",
                                "department_ids": fiscal, "company_ids": str(f.world.alfa_company.id)})
    yield "Convidar colaborador", 1
    f.post("/equipe/convidar", {"name": "Paula Reis", "email": "paula@alfa.com.br", "role": "staff"}, status=422)
    yield "the same e-mail again (refused)", 0
    paula = f.created(models.StaffMember, email="paula@alfa.com.br").id
    f.submit(f"/equipe/{paula}/editar", lambda form: form.add("company_ids", str(f.world.alfa_company2.id)))
    yield "Editar: the carteira", 1
    f.submit(f"/equipe/{paula}/editar")
    yield "Editar, saved as it is", 0
    for action in ("desativar", "reativar", "excluir"):
        f.post(f"/equipe/{paula}/{action}")
        yield action.capitalize(), 1
    ana = f.created(models.StaffMember, email="ana@alfa.com.br").id
    f.submit(f"/equipe/{ana}/editar", lambda form: form.__setitem__("role", "staff"), status=422)
    yield "the last Administrador makes herself a Colaborador (refused)", 0


CONTRACTS: dict[str, Scenario] = {
    "company.created": company_created,
    "company.changed": company_changed,
    "company.deactivated": company_deactivated,
    "company.reactivated": company_reactivated,
    "department.created": department_created,
    "department.renamed": department_renamed,
    "department.removed": department_removed,
    "client_user.access_changed": client_user_access_changed,
    "staff_member.changed": staff_member_changed,
}


def test_every_event_of_the_firm_s_settings_has_a_contract_test():
    """A new event of these areas in the catalogue needs its scenario here."""
    areas = ("company.", "department.", "staff_member.", "client_user.access_changed")
    assert {etype for etype in events.produced_by("users") if etype.startswith(areas)} == set(CONTRACTS)


def read_as_every_consumer(envelope: dict) -> dict:
    """The payload as each consumer of the catalogue loads it, from the JSON that travelled."""
    travelled = json.loads(json.dumps(envelope))
    spec = events.CATALOGUE[envelope["type"]]
    _envelope, payload = events.parse_envelope(travelled)  # what handle_message does, for any consumer
    for service in spec.consumers:  # ...which must have the handler the catalogue promises
        assert service in SERVICES and envelope["type"] in service_module(service, "consumers").HANDLERS
    return payload


@pytest.mark.parametrize("event_type", sorted(CONTRACTS))
def test_each_change_records_its_event_once_and_consumers_read_it(event_type, browser_client, config, world):
    firm = Firm(browser_client, config, world)
    seen = len(outbox_events(config, event_type))
    recorded: list[dict] = []
    wrong = []
    for what, expected in CONTRACTS[event_type](firm):
        now = outbox_events(config, event_type)
        if len(now) - seen != expected:
            wrong.append(f"{what}: {len(now) - seen} {event_type} event(s), expected {expected}")
        recorded += now[seen:]
        seen = len(now)
    assert not wrong, "\n".join(wrong)
    assert recorded
    for envelope in recorded:
        payload = read_as_every_consumer(envelope)
        assert payload["firm_id"] == world.alfa.id
        # a person's name and e-mail travel only in the fields named so (for the documents service:
        # "Visualizado por", its e-mails), never elsewhere in a payload; no CPF, no phone anywhere
        rest = {k: v for k, v in envelope["payload"].items() if k not in NAMED_PERSON_FIELDS.get(event_type, ())}
        travelled = json.dumps(rest, ensure_ascii=False).lower()
        assert not [p for p in PEOPLE if p.lower() in travelled], envelope


def test_the_consumer_side_refuses_a_payload_its_schema_does_not_accept(config, world):
    """Control for the reading above: a payload missing what the schema requires, or of a newer
    major version, is not read."""
    [envelope] = [e for e in outbox_events(config, "company.created")
                  if e["payload"]["company_id"] == str(world.alfa_company.id)]
    read_as_every_consumer(envelope)
    without_firm = {**envelope, "payload": {k: v for k, v in envelope["payload"].items() if k != "firm_id"}}
    with pytest.raises(events.ValidationError, match="firm_id"):
        read_as_every_consumer(without_firm)
    with pytest.raises(events.ValidationError, match="newer"):
        read_as_every_consumer({**envelope, "version": events.CATALOGUE["company.created"].version + 1})
