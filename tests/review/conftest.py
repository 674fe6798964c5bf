"""The review tests: a real server on 127.0.0.1 over real frame files; the page in headless Chromium."""

from __future__ import annotations

import pytest

from tests.review import cdpkit


def pytest_runtest_setup(item):
    if item.get_closest_marker("chromium") and not cdpkit.chromium_binary():
        pytest.skip("headless Chromium is not installed (make test installs it with apt: scripts/system-deps.sh)")


@pytest.fixture
def serve():
    """serve(frames, data, **open_review kwargs) -> (store, server) on a free port; closed after the test."""
    from edgelite.review.core import open_review
    from edgelite.review.server import ReviewServer

    servers = []

    def start(frames, data, address="127.0.0.1:0", token=None, **kw):
        store = open_review(frames, data, **kw)
        srv = ReviewServer(store, address, token).start()
        servers.append(srv)
        return store, srv

    yield start
    for srv in servers:
        srv.close()
