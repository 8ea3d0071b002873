"""Where tests keep what outlives a test run: under the checkout's data directory.

`data/` is the default `DISTILL_DATA_DIR` of a checkout (gitignored); test artifacts
(screenshots, the e2e model cache, vLLM logs, measured numbers) go to `data/test-artifacts/`
so that every working file of the project lives in one place.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "data" / "test-artifacts"
E2E_DATA = ARTIFACTS / "e2e-data"
