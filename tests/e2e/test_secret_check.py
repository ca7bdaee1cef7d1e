"""The no-secrets check of the end-to-end flows is able to fail: a secret in a body, in an AMQP
header of a retry through the default exchange, or in a dead letter's headers is reported.
(That the tap really receives those paths is proven live, with canaries, on every RabbitMQ run:
tests/e2e/conftest.py prove_tap_sees_every_path.)"""
import json

from tests.e2e.conftest import Secrets, secret_findings

TICKET = "eyJhbGciOiJFZERTQSJ9.eyJpbnYiOiIxMjMifQ.c2lnbmF0dXJl"


def traced(exchange: str, routing_key: str, *, headers: dict | None = None, body: dict | None = None) -> tuple:
    message = {"trace": f"publish.{exchange}", "exchange": exchange, "routing_keys": [routing_key],
               "properties": {"headers": headers or {}}, "body": json.dumps(body or {"type": "link.verified"})}
    return f"publish.{exchange} → {[routing_key]}", json.dumps(message)


def secrets() -> Secrets:
    found = Secrets("Carlos-Senha-Forte-58")
    found.add("invitation ticket", TICKET)
    found.add("recovery code", "abcd-efgh-ijkl")
    found.personal(cpf="529.982.247-25", phone="(11) 98765-4321")
    return found


def test_clean_messages_pass():
    assert secret_findings([traced("balcao.events", "link.verified")], secrets()) == []


def test_a_ticket_in_a_header_of_a_retry_through_the_default_exchange_is_found():
    leak = traced("", "invitations.link.verified.retry", headers={"x-balcao-attempts": 1, "x-debug": TICKET})
    assert secret_findings([leak], secrets()) == ["a invitation ticket in publish. → ['invitations.link.verified.retry']"]


def test_secrets_in_a_dead_letter_and_in_a_body_are_found():
    dead = traced("balcao.dead", "dead", headers={"x-balcao-reason": "invalid: password Carlos-Senha-Forte-58"})
    body = traced("balcao.events", "client_user.access_activated", body={"cpf": "52998224725", "hash": "$argon2id$v=19"})
    assert secret_findings([dead, body], secrets()) == [
        "a CPF in publish.balcao.events → ['client_user.access_activated']",
        "a password hash in publish.balcao.events → ['client_user.access_activated']",
        "a password in publish.balcao.dead → ['dead']",
    ]


def test_personal_data_counts_as_typed_and_as_bare_digits():
    assert {"529.982.247-25", "52998224725", "(11) 98765-4321", "11987654321"} <= set(secrets().values)
