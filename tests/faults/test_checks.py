"""The checks the fault scenarios end with are able to fail: fed with what a broken product would
show (a repeated e-mail, a late duplicate, a message left unacknowledged, a dead letter, an
invitation staff do not see as sent), each one reports it. No broker, no processes: a fake
product answers the SQL and rabbitmqctl questions, a Mailbox gets messages as the SMTP server
would hand them over."""
from __future__ import annotations

import threading
import time
import types
from datetime import UTC, datetime

import pytest

from tests.conftest import Mailbox

from ._chain import FaultMoment, assert_every_invitation_delivered_once, crash_window_hit

SENT_AT = datetime(2026, 11, 28, 13, 5, tzinfo=UTC)


class FakeProduct:
    broker_url = "amqp://guest:guest@127.0.0.1:5672/balcao-test-fake"

    def __init__(self, invited):
        self.queues = {"notifier.notification.email_requested": (0, 0),
                       "notifier.notification.email_requested.retry": (0, 0), "balcao.dead_letters": (0, 0)}
        self.shown = {email: ("invited", None, None, None, SENT_AT) for email in invited}
        self.unsent_deliveries = 0
        self.classic: set[str] = set()

    def rabbitmqctl(self, *args):
        assert args[:4] == ("-q", "list_queues", "-p", "balcao-test-fake"), args
        if args[4:6] == ("name", "type"):
            return 0, "".join(f"{name}\t{'classic' if name in self.classic else 'quorum'}\n" for name in self.queues)
        return 0, "".join(f"{name}\t{ready}\t{unacked}\n" for name, (ready, unacked) in self.queues.items())

    def scalar(self, service, sql, **params):
        return self.unsent_deliveries if "deliveries" in sql else 0

    def rows(self, service, sql, **params):
        assert service == "users" and params == {"slug": "contabilidade-teste"}, (service, params)
        return [(email, *state) for email, state in self.shown.items()]


def staff(n=3):
    return types.SimpleNamespace(tag="teste", slug="contabilidade-teste",
                                 invited=[f"cliente{i}-teste@cliente.example" for i in range(1, n + 1)])


def deliver(mailbox, to, n):
    mailbox.add(f"To: {to}\r\nSubject: Contabilidade teste convidou você\r\nMessage-ID: <{n}@balcao.test>\r\n\r\n"
                "Registre agora\r\n".encode())
    return f"<{n}@balcao.test>"


def check(product, mailbox, who, **kwargs):
    kwargs = {"timeout": 1, "quiet_seconds": 0.3, **kwargs}
    return assert_every_invitation_delivered_once(product, mailbox, who, **kwargs)


@pytest.fixture
def world():
    who = staff()
    mailbox = Mailbox()
    ids = [deliver(mailbox, to, n) for n, to in enumerate(who.invited)]
    return FakeProduct(who.invited), mailbox, who, ids


def test_one_email_each_and_nothing_left_passes(world):
    product, mailbox, who, ids = world
    assert check(product, mailbox, who) == {to: [mid] for to, mid in zip(who.invited, ids, strict=True)}


def test_a_repeated_email_is_refused_unless_its_crash_window_was_hit(world):
    product, mailbox, who, ids = world
    deliver(mailbox, who.invited[1], 1)  # the same Message-ID again
    with pytest.raises(AssertionError, match="more than once"):
        check(product, mailbox, who)
    check(product, mailbox, who, crash_window={ids[1]})
    with pytest.raises(AssertionError, match="more than once"):  # not a crash window of another e-mail
        check(product, mailbox, who, crash_window={ids[0]})
    deliver(mailbox, who.invited[1], 1)  # a third copy: never
    with pytest.raises(AssertionError, match="more than once"):
        check(product, mailbox, who, crash_window={ids[1]})


def test_a_second_message_id_for_one_person_is_refused(world):
    product, mailbox, who, _ids = world
    deliver(mailbox, who.invited[0], 99)
    with pytest.raises(AssertionError, match="several Message-IDs"):
        check(product, mailbox, who, crash_window={"<99@balcao.test>"})


def test_a_late_duplicate_is_waited_for_and_counted(world):
    product, mailbox, who, _ids = world
    late = threading.Timer(0.2, deliver, args=(mailbox, who.invited[2], 2))
    late.start()
    try:
        with pytest.raises(AssertionError, match="more than once"):
            check(product, mailbox, who, quiet_seconds=0.6)
    finally:
        late.join()


def test_an_email_to_somebody_not_invited_is_refused(world):
    product, mailbox, who, _ids = world
    deliver(mailbox, "cliente9-teste@cliente.example", 9)
    with pytest.raises(AssertionError, match="nobody invited"):
        check(product, mailbox, who)


@pytest.mark.parametrize("queue, counts", [("notifier.notification.email_requested", (0, 1)),
                                           ("notifier.notification.email_requested", (1, 0)),
                                           ("notifier.notification.email_requested.retry", (1, 0)),
                                           ("balcao.dead_letters", (1, 0))])
def test_a_message_left_on_the_broker_is_refused(world, queue, counts):
    product, mailbox, who, _ids = world
    product.queues[queue] = counts
    with pytest.raises(AssertionError, match="the broker still holds messages"):
        check(product, mailbox, who)


def test_dead_letters_put_there_on_purpose_are_allowed_and_counted(world):
    product, mailbox, who, _ids = world
    product.queues["balcao.dead_letters"] = (2, 0)
    check(product, mailbox, who, dead_letters=2)
    with pytest.raises(AssertionError, match="the broker still holds messages"):
        check(product, mailbox, who, dead_letters=1)


def test_a_delivery_not_sent_is_stuck(world):
    product, mailbox, who, _ids = world
    product.unsent_deliveries = 1
    with pytest.raises(AssertionError, match="something is stuck"):
        check(product, mailbox, who)


@pytest.mark.parametrize("state", [("invited", None, None, None, None),                 # Aguardando envio
                                   ("invited", None, "421 try later", False, None),    # nova tentativa
                                   ("invited", None, "550 no such user", True, None)])  # falha
def test_an_invitation_staff_do_not_see_as_sent_is_refused(world, state):
    product, mailbox, who, _ids = world
    product.shown[who.invited[0]] = state
    with pytest.raises(AssertionError, match="does not show every invitation as sent"):
        check(product, mailbox, who)


def test_the_crash_window_is_what_the_smtp_server_accepted_but_the_notifier_had_not_committed():
    mailbox = Mailbox()
    deliver(mailbox, "a@cliente.example", 1)   # sent and committed before the kill
    deliver(mailbox, "b@cliente.example", 2)   # accepted by the server, delivery still "queued"
    moment = FaultMoment(at=time.monotonic(), received={"a@cliente.example", "b@cliente.example"},
                         in_flight={"<2@balcao.test>": "b@cliente.example", "<3@balcao.test>": "c@cliente.example"})
    restarted_at = time.monotonic()
    deliver(mailbox, "c@cliente.example", 3)   # in flight but not accepted before the restart: sent once, later
    assert crash_window_hit(moment, mailbox, restarted_at) == {"<2@balcao.test>"}
    assert crash_window_hit(FaultMoment(at=0, received=set(), in_flight={}), mailbox, restarted_at) == set()


@pytest.mark.parametrize("received, mid_batch", [(0, False), (1, True), (29, True), (30, False)])
def test_a_fault_counts_as_mid_batch_only_when_some_and_not_all_had_arrived(received, mid_batch):
    moment = FaultMoment(at=0, received={f"c{i}@x" for i in range(received)}, in_flight={})
    if mid_batch:
        moment.assert_mid_batch(30)
    else:
        with pytest.raises(AssertionError, match="did not hit mid-batch"):
            moment.assert_mid_batch(30)


def test_a_classic_queue_in_the_run_is_refused(world):
    product, mailbox, who, _ids = world
    product.classic.add("notifier.notification.email_requested.retry")
    with pytest.raises(AssertionError, match=r"not quorum queues: \['notifier.notification.email_requested.retry'\]"):
        check(product, mailbox, who)
