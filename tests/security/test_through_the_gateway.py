"""Account-security rules against the services as they run: separate gunicorn processes with
two workers each behind nginx, RabbitMQ, PostgreSQL — driven over HTTP like a browser.

* ten wrong passwords lock the account even for the right one, whichever gunicorn worker
  answers (the counters live in a store the workers share): auth's access log shows, by pid,
  that both workers answered "locked";
* a password reset ends a session opened in another browser (auth publishes session.ended,
  users refuses that token);
* a membership deactivated by the firm is refused on the very next request there.
"""
from __future__ import annotations

import functools
import json
import re
import signal
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import Staff, link_in, running_product, wait_until
from testsupport import csrf_token

pytestmark = pytest.mark.distributed

LOCKED = "Conta bloqueada temporariamente"


@pytest.fixture(scope="module")
def product(mailbox, tmp_path_factory):
    with running_product(tmp_path_factory.mktemp("security"), smtp_port=mailbox.port, web_workers=2,
                         tag="sec") as running:
        yield running


def _login(url: str, email: str, password: str, *, rid: str | None = None, before_post=None) -> requests.Response:
    http = requests.Session()
    page = http.get(url + "/auth/entrar", timeout=30)
    if before_post is not None:
        before_post()
    return http.post(url + "/auth/entrar", timeout=30, headers={"X-Request-ID": rid} if rid else {},
                     data={"csrf_token": csrf_token(page.text), "email": email, "password": password})


def answered_by(product, rids) -> dict[str, int]:
    """Request id → pid of the gunicorn worker of auth that answered it (auth's access log)."""
    wanted, found = set(rids), {}
    for line in (product.stack.logs_dir / "auth-web.log").read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("logger") == "gunicorn.access" and "POST /auth/entrar" in record["message"]:
            rid = record["message"].rsplit("rid=", 1)[-1]
            if rid in wanted:
                found[rid] = record["pid"]
    return found


def test_ten_wrong_passwords_lock_the_account_in_every_worker(product):
    """Both gunicorn workers of auth answer "locked" (shown by pid in auth's access log). Ten
    failures were counted in all; at least one of the two workers answered fewer than ten of them
    itself, so its "locked" comes from the store the workers share."""
    staff = Staff(product, "trava")
    email = f"admin-{staff.tag}@firma.example"
    tag = uuid.uuid4().hex[:6]
    for i in range(9):
        # a new connection each time: the kernel hands them to either gunicorn worker
        assert "E-mail ou senha incorretos" in _login(product.url, email, "senha-errada-123", rid=f"w{tag}{i}").text
    assert LOCKED in _login(product.url, email, "senha-errada-123", rid=f"w{tag}9").text  # the tenth locks

    # The right password, in bursts of simultaneous requests (nginx then opens several upstream
    # connections, which the two workers accept) until both workers have answered — each "locked".
    refused: dict[str, str] = {}
    for burst in range(3):  # 10 failures + 18 attempts stay under the 30 logins a minute of one IP
        rids = [f"r{tag}{burst}{n}" for n in range(6)]
        attempt = functools.partial(_login, product.url, email, Staff.PASSWORD,
                                    before_post=threading.Barrier(len(rids)).wait)
        with ThreadPoolExecutor(len(rids)) as pool:
            answers = [future.result() for future in [pool.submit(attempt, rid=rid) for rid in rids]]
        for rid, answer in zip(rids, answers, strict=True):
            assert LOCKED in answer.text and "/auth/entrar" in answer.url, (rid, answer.status_code)
            refused[rid] = answer.text
        pids = wait_until(lambda: (lambda got: got if len(got) == len(refused) else None)(answered_by(product, refused)),
                          timeout=15, message="auth's access log never showed the requests")
        if len(set(pids.values())) >= 2:
            break
    workers = set(pids.values())
    assert len(workers) == 2, f"only one gunicorn worker of auth answered: {pids}"
    assert len(answered_by(product, [f"w{tag}{i}" for i in range(10)])) == 10  # every failure was answered


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
