"""Schemathesis against the app's own OpenAPI description: whatever it generates (valid
and invalid), the proxy answers without a 5xx of its own, in bounded time.

Upstreams are in-process fakes that answer normally, so any 5xx would be the proxy's.
Requests carry a client key; admin endpoints must then refuse them (401/403), never
run them. Bounded: a fixed number of examples per operation (~30 s in all).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from proxy.app import Transports, create_app
from tests.conftest import base_settings
from tests.fakes import FakeUpstream
from tests.server_thread import running

# Its own tier: schemathesis gives every operation the same node id, and xdist (the fast
# tier) would run only one of them.
pytestmark = pytest.mark.fuzz

CLIENT_KEY = "sk-fuzz-client-000001"
EXAMPLES = 50
CALL_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    settings_ = base_settings(
        tmp, api_keys=CLIENT_KEY, admin_key="sk-fuzz-admin-000001", teacher_retries=0
    )
    student, teacher = FakeUpstream(default_text="Paris"), FakeUpstream()
    app = create_app(settings_, Transports(student.transport(), teacher.transport()))
    with running(app) as url:
        yield url


def _openapi() -> dict[str, Any]:
    """The same document the server serves at /openapi.json (no lifespan needed)."""
    return create_app(base_settings(Path("unused"))).openapi()


schema = schemathesis.openapi.from_dict(_openapi())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_no_hangs(case: Any, live_url: str) -> None:
    case.headers = {**(case.headers or {}), "authorization": f"Bearer {CLIENT_KEY}"}
    response = case.call(base_url=live_url, timeout=CALL_TIMEOUT)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    if case.path.startswith("/admin") or case.path.startswith("/dashboard/api"):
        assert response.status_code in (401, 403, 404, 405, 422, 400), response.text[:300]
    if response.status_code >= 400 and "json" in response.headers.get("content-type", [""])[0]:
        error = response.json().get("error")
        assert isinstance(error, dict) and error.get("message"), response.text[:300]
