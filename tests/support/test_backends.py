"""Where a test run gets its RabbitMQ and PostgreSQL (testsupport/infra.py): the environment,
else testcontainers when a Docker engine answers, else none. Checked here without Docker: the
engine probe and the container start are replaced by fakes that record what was asked."""
from __future__ import annotations

import pytest

from testsupport import infra as b


class Docker:
    """A fake engine probe and container start."""

    def __init__(self, answers: bool):
        self.answers, self.probed, self.started = answers, 0, 0

    def probe(self) -> bool:
        self.probed += 1
        return self.answers

    def start(self) -> b.Backends:
        self.started += 1
        return b.Backends("testcontainers", "amqp://guest:guest@10.0.0.5:32771//", "postgresql://test:test@10.0.0.5:32772/test",
                          lambda *args: (0, ""))


ENV = {b.ENV_BROKER: "amqp://guest:guest@127.0.0.1:5672//", b.ENV_DATABASE: "postgresql://postgres@127.0.0.1:5432/postgres"}


@pytest.mark.parametrize("docker_answers", [True, False])
def test_the_environment_wins_and_no_engine_is_asked(docker_answers):
    docker = Docker(docker_answers)
    found = b.resolve_backends(ENV, docker_answers=docker.probe, start=docker.start)
    assert (found.source, found.broker_url, found.database_url) == ("environment", ENV[b.ENV_BROKER],
                                                                     ENV[b.ENV_DATABASE])
    assert found.distributed and found.rabbitmqctl is b.local_rabbitmqctl
    assert (docker.probed, docker.started) == (0, 0)


def test_one_variable_alone_is_taken_as_given_and_the_distributed_tests_are_off():
    docker = Docker(True)
    found = b.resolve_backends({b.ENV_DATABASE: ENV[b.ENV_DATABASE]}, docker_answers=docker.probe, start=docker.start)
    assert (found.source, found.broker_url, found.database_url) == ("environment", None, ENV[b.ENV_DATABASE])
    assert not found.distributed and found.missing() == [b.ENV_BROKER]
    assert docker.started == 0


def test_without_variables_a_docker_engine_gives_both_from_containers():
    docker = Docker(True)
    found = b.resolve_backends({}, docker_answers=docker.probe, start=docker.start)
    assert found.source == "testcontainers" and found.distributed and found.missing() == []
    assert found.broker_url.startswith("amqp://") and found.database_url.startswith("postgresql://")
    assert (docker.probed, docker.started) == (1, 1)


def test_without_variables_nor_docker_there_is_nothing_and_nothing_is_started():
    docker = Docker(False)
    found = b.resolve_backends({}, docker_answers=docker.probe, start=docker.start)
    assert found == b.Backends("none") and not found.distributed
    assert found.missing() == [b.ENV_BROKER, b.ENV_DATABASE]
    assert (docker.probed, docker.started) == (1, 0)


def test_containers_can_be_refused_even_where_docker_answers():
    docker = Docker(True)
    found = b.resolve_backends({b.ENV_NO_CONTAINERS: "1"}, docker_answers=docker.probe, start=docker.start)
    assert found.source == "none" and (docker.probed, docker.started) == (0, 0)


def test_empty_variables_count_as_absent():
    docker = Docker(False)
    assert b.resolve_backends({b.ENV_BROKER: "", b.ENV_DATABASE: ""}, docker_answers=docker.probe,
                              start=docker.start).source == "none"


def test_the_vhost_and_rabbitmqctl_follow_the_broker(monkeypatch):
    """rabbitmqctl reaches the container's node for the container's broker (vhosts, list_queues,
    stop_app), the local binary for any other broker."""
    docker = Docker(True)
    found = docker.start()
    monkeypatch.setattr(b, "_resolved", found)
    assert b.rabbitmqctl_for("amqp://guest:guest@10.0.0.5:32771/balcao-test-x") is found.rabbitmqctl
    assert b.rabbitmqctl_for("amqp://guest:guest@127.0.0.1:5672//") is b.local_rabbitmqctl
    assert b.vhost_of("amqp://guest:guest@10.0.0.5:32771/balcao-test-x") == "balcao-test-x"
    assert b.vhost_of("amqp://guest:guest@127.0.0.1:5672//") == "/"
    assert b.vhost_of("amqp://guest:guest@127.0.0.1:5672") == "/"


def test_a_private_vhost_is_made_and_removed_through_the_broker_s_rabbitmqctl():
    calls = []

    def ctl(*args):
        calls.append(args)
        return 0, ""

    with b.private_vhost("amqp://guest:guest@10.0.0.5:32771//", ctl) as url:
        name = url.rsplit("/", 1)[1]
        assert url == f"amqp://guest:guest@10.0.0.5:32771/{name}" and name.startswith("balcao-test-")
        assert calls == [("add_vhost", name), ("set_permissions", "-p", name, "guest", ".*", ".*", ".*")]
    assert calls[-1] == ("delete_vhost", name)
    with b.private_vhost("memory://", ctl) as url:
        assert url == "memory://"
