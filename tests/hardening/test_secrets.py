"""Planted secrets (client, admin, teacher keys) never reach the DB, the spill journal,
any file under data_dir, the server's log output or an error message; admin endpoints
need the admin key."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.soak.stack import signal_proxy
from proxy.app import create_app
from proxy.settings import Settings
from tests.hardening.conftest import TEACHER_KEY, query

CLIENT_KEY = "sk-client-PLANTED-31d8e2"
ADMIN_KEY = "sk-admin-PLANTED-c04a7f"
WRONG_KEY = "sk-wrong-PLANTED-9b2c11"
PLANTED = (CLIENT_KEY, ADMIN_KEY, TEACHER_KEY, WRONG_KEY)
# A bearer token that is not the scrubbed placeholder.
BEARER = re.compile(rb"(?i)bearer\s+(?!<SECRET>)[A-Za-z0-9._\-]{6,}")

TRAFFIC = [  # (key, prompt, stream)
    (CLIENT_KEY, "hello", False),
    (CLIENT_KEY, "hello", True),
    (CLIENT_KEY, "#student=unsure", False),
    (CLIENT_KEY, "#student=unsure", True),
    (CLIENT_KEY, f"my key is {CLIENT_KEY} and the admin's {ADMIN_KEY}", False),
    (CLIENT_KEY, "#student=unsure #teacher=echo-auth", False),
    (CLIENT_KEY, "#student=unsure #teacher=echo-auth", True),
    (CLIENT_KEY, "#teacher=echo-auth", False),
    (CLIENT_KEY, "#student=500 #teacher=echo-auth", False),
    (CLIENT_KEY, "#student=unsure #teacher=500", False),
    (CLIENT_KEY, "#student=unsure #teacher=echo-auth-stream", True),
    (WRONG_KEY, "hello", False),
    (ADMIN_KEY, "hello", False),
]


def _drive(url: str) -> list[bytes]:
    bodies: list[bytes] = []
    with httpx.Client(timeout=30) as client:
        for key, prompt, stream in TRAFFIC:
            body = {
                "model": "m",
                "messages": [{"role": "user", "content": prompt}],
                "stream": stream,
            }
            headers = {"authorization": f"Bearer {key}"}
            forced = {"x-distill-route": "teacher"} if prompt == "#teacher=echo-auth" else {}
            response = client.post(
                f"{url}/v1/chat/completions", json=body, headers={**headers, **forced}
            )
            bodies.append(response.content + str(response.headers).encode())
        no_key = client.post(f"{url}/v1/chat/completions", json={"model": "m"})
        assert no_key.status_code == 401
        for path in ("/admin/stats", "/admin/runs", "/admin/students"):
            as_client = client.get(
                f"{url}{path}", headers={"authorization": f"Bearer {CLIENT_KEY}"}
            )
            assert as_client.status_code == 403, (path, as_client.text)
            as_admin = client.get(f"{url}{path}", headers={"authorization": f"Bearer {ADMIN_KEY}"})
            assert as_admin.status_code == 200, (path, as_admin.text)
            bodies += [as_client.content, as_admin.content]
    return bodies


def _leaks(data: bytes) -> list[str]:
    found = [s for s in PLANTED if s.encode() in data]
    return found + [m.decode(errors="replace") for m in BEARER.findall(data)]


@pytest.mark.chaos
def test_planted_secrets_never_leak(serve: Any, tmp_path: Path) -> None:
    proxy, config = serve(
        DISTILL_API_KEYS=f"{CLIENT_KEY},sk-other-client-0001",
        DISTILL_ADMIN_KEY=ADMIN_KEY,
        DISTILL_TEACHER_RETRIES="1",
    )
    bodies = _drive(proxy.root)
    signal_proxy(proxy, signal.SIGTERM)
    assert proxy.child.popen.wait(timeout=40) == 0
    for i, body in enumerate(bodies):
        assert not _leaks(body), f"response {i} leaks {_leaks(body)}: {body[:300]!r}"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert config.db in files and proxy.child.log_path in files
    for path in files:
        assert not _leaks(path.read_bytes()), f"{path} leaks {_leaks(path.read_bytes())}"
    # Through SQL too (DuckDB may compress strings on disk).
    dump = "\n".join(map(str, query(config.db, "SELECT * FROM requests"))).encode()
    # Every chat request has a row, the 401 included (issue 13).
    chat_rows = query(config.db, "SELECT status_code FROM requests WHERE endpoint LIKE '/v1/%'")
    assert len(chat_rows) == len(TRAFFIC) + 1  # + the request without a key
    assert not _leaks(dump), _leaks(dump)
    assert b"<SECRET>" in dump  # the pasted keys were scrubbed, not dropped with their rows


ADMIN_SETTINGS: dict[str, Any] = {"api_keys": CLIENT_KEY, "admin_key": ADMIN_KEY}


def _admin_routes() -> list[tuple[str, str]]:
    app = create_app(Settings(db=Path("unused.duckdb"), **ADMIN_SETTINGS))
    routes = []
    for route in app.routes:
        path = getattr(route, "path", "")
        if path.startswith(("/admin", "/dashboard/api")):
            for method in sorted(getattr(route, "methods", ()) or ()):
                routes.append((method, re.sub(r"\{[^}]+\}", "x", path)))
    return routes


ROUTES = _admin_routes()


def test_there_are_admin_routes_to_check() -> None:
    assert ("GET", "/admin/stats") in ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_client_keys_cannot_reach_admin_endpoints(make_proxy: Any, method: str, path: str) -> None:
    with make_proxy(**ADMIN_SETTINGS) as h:
        for key, allowed in ((None, (401,)), (CLIENT_KEY, (401, 403)), (WRONG_KEY, (401, 403))):
            headers = {"authorization": f"Bearer {key}"} if key else {}
            response = httpx.request(method, f"{h.url}{path}", headers=headers, json={})
            assert response.status_code in allowed, (key, response.text)
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert not _leaks(response.content)
        if method == "GET":  # reads only: an admin POST would start a training run
            admin = httpx.get(f"{h.url}{path}", headers={"authorization": f"Bearer {ADMIN_KEY}"})
            assert admin.status_code not in (401, 403), admin.text
