"""Account-security rules against the services as they run: separate gunicorn processes with
two workers each behind nginx, RabbitMQ, PostgreSQL — driven over HTTP like a browser.

* ten wrong passwords lock the account even for the right one, whichever gunicorn worker
  answers (the counters live in a store the workers share);
* a password reset ends a session opened in another browser (auth publishes session.ended,
  users refuses that token);
* a membership deactivated by the firm is refused on the very next request there.
"""
from __future__ import annotations

import re
import signal

import pytest
import requests

from services.common.testing import csrf_token
from tests.conftest import Staff, link_in, running_product, wait_until

pytestmark = pytest.mark.distributed

LOCKED = "Conta bloqueada temporariamente"


@pytest.fixture(scope="module")
def product(mailbox, tmp_path_factory):
    with running_product(tmp_path_factory.mktemp("security"), smtp_port=mailbox.port, web_workers=2,
                         tag="sec") as running:
        yield running


def _login(url: str, email: str, password: str) -> requests.Response:
    http = requests.Session()
    page = http.get(url + "/auth/entrar", timeout=30)
    return http.post(url + "/auth/entrar", timeout=30,
                     data={"csrf_token": csrf_token(page.text), "email": email, "password": password})


def test_ten_wrong_passwords_lock_the_account_in_every_worker(product):
    staff = Staff(product, "trava")
    email = f"admin-{staff.tag}@firma.example"
    for _ in range(9):
        # a new connection each time: the kernel hands them to either gunicorn worker
        assert "E-mail ou senha incorretos" in _login(product.url, email, "senha-errada-123").text
    assert LOCKED in _login(product.url, email, "senha-errada-123").text  # the tenth locks
    refused = _login(product.url, email, Staff.PASSWORD)
    assert LOCKED in refused.text and "/auth/entrar" in refused.url
    assert LOCKED in _login(product.url, email, Staff.PASSWORD).text


def test_a_password_reset_ends_the_session_of_another_browser(product, mailbox):
    staff = Staff(product, "reset")
    home = f"{product.url}/e/{staff.slug}/"
    assert staff.http.get(home, timeout=30, allow_redirects=False).status_code == 200

    other = requests.Session()  # another browser: asks for a reset and sets a new password
    page = other.get(product.url + "/auth/esqueci-senha", timeout=30)
    email = f"admin-{staff.tag}@firma.example"
    sent_before = mailbox.count()
    other.post(product.url + "/auth/esqueci-senha", timeout=30,
               data={"csrf_token": csrf_token(page.text), "email": email})
    reset = link_in(mailbox.wait_for(to=email, subject_contains="Redefinição de senha", after=sent_before),
                    "/auth/redefinir-senha/")
    form = other.get(reset, timeout=30)
    done = other.post(reset, timeout=30, data={"csrf_token": csrf_token(form.text),
                                               "password": "Outra-senha-bem-longa-77",
                                               "password_confirmation": "Outra-senha-bem-longa-77"})
    assert done.status_code == 200 and "Senha alterada" in done.text

    def refused():
        response = staff.http.get(home, timeout=30, allow_redirects=False)
        return response.status_code in (302, 303) and "/auth/entrar" in response.headers["Location"]

    wait_until(refused, timeout=30, message="the first browser's session still opens the firm after the reset")


def test_a_deactivated_membership_is_refused_on_the_very_next_request(product, mailbox):
    staff = Staff(product, "desativa")
    sent_before = mailbox.count()
    [email] = staff.invite(1)
    invite = link_in(mailbox.wait_for(to=email, subject_contains=f"Contabilidade {staff.tag}", after=sent_before),
                     "/convite/")
    client = requests.Session()
    page = client.get(invite, timeout=30)  # → /auth/convite?ticket=… (registration)
    assert page.status_code == 200 and 'name="ticket"' in page.text
    ticket = re.search(r'name="ticket" value="([^"]+)"', page.text).group(1)
    client.post(product.url + "/auth/convite/registrar", timeout=30, data={
        "csrf_token": csrf_token(page.text), "ticket": ticket, "name": "Cliente Desativado",
        "password": "Senha-do-cliente-42", "password_confirmation": "Senha-do-cliente-42"})
    home = f"{product.url}/e/{staff.slug}/"
    wait_until(lambda: client.get(home, timeout=30, allow_redirects=False).status_code == 200, timeout=30,
               message="the membership was never granted")

    listing = staff.http.get(f"{product.url}/e/{staff.slug}/configuracoes/usuarios-de-clientes", timeout=30)
    user_url = re.search(r'href="(/e/[^"]+/configuracoes/usuarios-de-clientes/[0-9a-f-]{36})"', listing.text).group(1)
    detail = staff.http.get(product.url + user_url, timeout=30)
    deactivated = staff.http.post(product.url + user_url + "/desativar", timeout=30,
                                  data={"csrf_token": csrf_token(detail.text)})
    assert deactivated.status_code == 200
    assert client.get(home, timeout=30, allow_redirects=False).status_code == 404


def test_after_sair_the_old_cookie_is_refused_on_the_very_next_request(product):
    staff = Staff(product, "sair")
    home = f"{product.url}/e/{staff.slug}/"
    account = f"{product.url}/auth/minha-conta/sessoes"
    old = staff.http.cookies.get("balcao_session")
    assert old and staff.http.get(home, timeout=30, allow_redirects=False).status_code == 200
    # The users worker is stopped: session.ended waits in RabbitMQ, so only the browser's way
    # back to the login page (through users) can have told users that this session ended.
    users_worker = product.stack.processes["users-worker"]
    users_worker.send_signal(signal.SIGSTOP)
    try:
        page = staff.http.get(home, timeout=30)
        out = staff.http.post(product.url + "/auth/sair", timeout=30, data={"csrf_token": csrf_token(page.text)})
        assert out.status_code == 200 and out.url == product.url + "/auth/entrar"
        copied = requests.Session()  # whoever kept a copy of the cookie
        copied.cookies.set("balcao_session", old)
        for url in (home, account):
            response = copied.get(url, timeout=30, allow_redirects=False)
            assert response.status_code in (302, 303), (url, response.status_code)
            assert "/auth/entrar" in response.headers["Location"], url
        assert [r.status_code for r in out.history] == [303, 303]  # auth → users → the login page
    finally:
        users_worker.send_signal(signal.SIGCONT)
