"""Screenshot of the dashboard over an existing request log, e.g. after a benchmark run:

    .venv/bin/python -m tests.observability.shoot_dashboard path/to/distill.duckdb \\
        [--out docs/dashboard.png] [--since all]

The file is copied first (the server migrates and owns what it opens); a proxy with fake
upstreams serves the copy on loopback, and Debian's chromium (driven by Playwright)
takes a full-page screenshot once every chart has drawn.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from proxy.app import Transports, create_app
from proxy.settings import Settings
from tests.fakes import FakeUpstream
from tests.paths import ARTIFACTS
from tests.server_thread import running

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READY = "window.distillDashboard && window.distillDashboard.status === 'ready'"


def screenshot(page: Any, url: str, out: Path) -> None:
    """Opens the dashboard (already authorised) and saves a full-page screenshot."""
    page.goto(url)
    page.wait_for_function(READY, timeout=20000)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)


def shoot(db: Path, out: Path, since: str = "all") -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "distill.duckdb"
        shutil.copy(db, copy)
        settings = Settings(
            db=copy,
            data_dir=Path(tmp) / "data",
            student_url="http://student.invalid/v1",
            student_model="student",
            teacher_url="http://teacher.invalid/v1",
        )
        fake = FakeUpstream()
        app = create_app(settings, Transports(fake.transport(), fake.transport()))
        with running(app) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            try:
                page = browser.new_page(
                    viewport={"width": 1400, "height": 1300}, device_scale_factor=1
                )
                screenshot(page, f"{url}/dashboard?since={since}", out)
            finally:
                browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("db", type=Path)
    parser.add_argument("--out", type=Path, default=ARTIFACTS / "dashboard-db.png")
    parser.add_argument("--since", default="all")
    args = parser.parse_args()
    shoot(args.db, args.out, args.since)
    print(args.out)


if __name__ == "__main__":
    main()
