"""Fixtures of the documents tests: a real S3 server (SeaweedFS) for the whole session."""
from __future__ import annotations

import pytest

from testsupport.seaweed import SeaweedServer


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """A running SeaweedFS S3 server (tests may stop() and start() it; it is running again
    whenever a test ends). Its credentials are dummies: see `s3_env`."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
