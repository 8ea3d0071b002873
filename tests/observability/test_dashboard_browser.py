"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Traffic goes through a real proxy (fake upstreams) over two student versions, the page is
opened through the login form, every chart must have drawn its data, the "Start a run"
button must start a run on the server, and a screenshot lands in data/test-artifacts/.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.serving.student_state import StudentVersion
from tests.conftest import ProxyHarness
from tests.fakes import FakeUpstream, completion, json_response
from tests.observability.traffic import QUESTION
from tests.paths import ARTIFACTS, REPO

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ADMIN = "adm-browser-key-SECRET"
FAILING_TRAINER = f"{sys.executable} -c 'import sys; sys.exit(3)'"
MODEL = "gpt-4.1"  # $2 / $8 per 1M tokens: a teacher worth distilling away from
CHART_IDS = ("chart-cost", "chart-fallback", "chart-agreement", "chart-latency", "chart-confidence")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Per chart: data points drawn, and saturated (non-grey) pixels inside the plot area, so
# axes, grid lines and tick labels alone do not count as "rendered".
_CHART_PROBE = """
(ids) => ids.map((id) => {
  const chart = window.distillDashboard.charts[id];
  if (!chart) return { id, points: 0, coloured: 0 };
  const points = chart.data.datasets.reduce(
    (n, ds) => n + ds.data.filter((p) => p != null && (p.y ?? p) != null).length, 0);
  const r = chart.currentDevicePixelRatio, a = chart.chartArea;
  const img = chart.ctx.getImageData(a.left * r, a.top * r, (a.right - a.left) * r,
                                     (a.bottom - a.top) * r).data;
  let coloured = 0;
  for (let i = 0; i < img.length; i += 4) {
    const hi = Math.max(img[i], img[i + 1], img[i + 2]);
    const lo = Math.min(img[i], img[i + 1], img[i + 2]);
    if (img[i + 3] > 0 && hi - lo > 60) coloured++;
  }
  return { id, points, coloured };
})
"""


def _student_answer(text: str, logprob: float) -> Callable[[dict[str, Any]], httpx.Response]:
    def behaviour(body: dict[str, Any]) -> httpx.Response:
        top_k = int(body.get("top_logprobs") or 0)
        return json_response(200, completion(text, logprob=logprob, top_k=top_k))

    return behaviour


def _phase(h: ProxyHarness, rng: random.Random, n: int, unsure: float, wrong: float) -> None:
    client = h.client()
    for i in range(n):
        roll = rng.random()
        if roll < unsure:
            h.student.script.append(_student_answer("Maybe Lyon", rng.uniform(-2.5, -0.6)))
        elif roll < unsure + wrong:
            h.student.script.append(_student_answer("Lyon", rng.uniform(-0.45, -0.05)))
        else:
            h.student.script.append(_student_answer("Paris", rng.uniform(-0.4, -0.01)))
        if i % 4 == 3:
            stream = client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        else:
            client.chat.completions.create(model=MODEL, messages=QUESTION)
        time.sleep(0.12)


def _drive_two_versions(h: ProxyHarness) -> None:
    rng = random.Random(7)
    _phase(h, rng, 24, unsure=0.5, wrong=0.2)
    h.app.state.active.swap(StudentVersion(name="student-base", version="v1-20250101"))
    _phase(h, rng, 24, unsure=0.15, wrong=0.05)
    h.flush()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium): browser test skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_dashboard_renders_real_data_and_starts_a_run(
    make_proxy: Callable[..., Any], browser: Any
) -> None:
    student = FakeUpstream(default_text="Paris")
    teacher = FakeUpstream(default_text="Paris")
    with make_proxy(
        student=student,
        teacher=teacher,
        admin_key=ADMIN,
        shadow_rate=0.5,
        trainer_command=FAILING_TRAINER,
    ) as h:
        _drive_two_versions(h)
        page = browser.new_page(viewport={"width": 1400, "height": 1300}, device_scale_factor=1)
        outside: list[str] = []
        page.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if not r.url.startswith(h.url) and not r.url.startswith("data:")
                else None
            ),
        )
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        page.goto(f"{h.url}/dashboard?since=all")
        page.fill("#key", ADMIN)
        page.click("button[type=submit]")
        page.wait_for_function(
            "window.distillDashboard && window.distillDashboard.status === 'ready'", timeout=15000
        )
        assert page.text_content("#k-requests") == "48"
        assert page.text_content("#k-degraded") == "0 (0.0%)"  # a teacher answered throughout
        assert page.text_content("#k-fallback").endswith("%")
        assert page.text_content("#version") == "v1-20250101"
        assert page.input_value("#since") == "all"  # the login kept the window asked for

        probes = page.evaluate(_CHART_PROBE, list(CHART_IDS))
        for probe in probes:
            assert probe["points"] > 0, probe
            assert probe["coloured"] > 100, probe
        markers = page.evaluate(
            "window.distillDashboard.charts['chart-fallback'].options.plugins.markers.lines"
            ".map((m) => m.label)"
        )
        assert markers == ["base", "v1-20250101"]

        with page.expect_response(lambda r: r.url.endswith("/dashboard/api/runs")) as answer:
            page.click("#trigger-run")
        assert answer.value.status == 202, answer.value.text()
        run_id = answer.value.json()["id"]
        page.wait_for_function(
            f"document.querySelector('#runs-body').textContent.includes('{run_id}')", timeout=15000
        )
        # Wait for the fake trainer to fail, so the table shows an outcome and its reason.
        assert _reload_until_failed(page, h, run_id), "the fake trainer's run never ended"
        page.wait_for_function(
            "document.querySelector('#runs-body').textContent.includes('exit code 3')",
            timeout=15000,
        )

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        assert not errors, errors
        assert not outside, f"the page fetched outside the proxy: {outside}"
        if "--keep-dashboard-shot" in sys.argv:  # a human refreshes docs/ on purpose
            shutil.copy(shot, REPO / "docs" / "dashboard.png")


def _reload_until_failed(page: Any, h: ProxyHarness, run_id: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = h.app.state.writer.read(
            lambda cur: cur.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchall()
        )
        if rows and rows[0][0] == "failed":
            page.click("#refresh")
            return True
        time.sleep(0.2)
    return False
