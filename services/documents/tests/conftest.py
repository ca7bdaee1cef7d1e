"""Fixtures of the documents tests: boto3 pointed at the run's real S3 server (SeaweedFS: the
`seaweed` fixture of testsupport/plugin.py), and the users service's personas (Alfa and Beta,
Carlos a client of both) carried to the documents service's projection through the users
service's own events."""
from __future__ import annotations

import pytest

from services.common.keys import KeyRing
from services.common.sessions import issue_session_token
from services.users.tests.conftest import World, _pii_key, world  # noqa: F401  (the users personas)
from testsupport.documents import publish  # noqa: F401


@pytest.fixture
def s3_env(seaweed, monkeypatch):
    """boto3's environment (credentials, region) pointing at the test server, whose bucket is
    empty; the running server."""
    for name, value in seaweed.env.items():
        monkeypatch.setenv(name, value)
    seaweed.empty_bucket()
    yield seaweed
    if not seaweed.running:
        seaweed.start()


@pytest.fixture
def docworld(world: World, bus) -> World:  # noqa: F811
    """The users world, with every event it recorded delivered (the documents projection is built)."""
    bus.pump()
    return world


def login(client, config, person) -> None:
    token = issue_session_token(KeyRing(config.keys_dir), identity_id=person.identity_id, email=person.email,
                                name=person.name)
    client.set_cookie("balcao_session", token)
