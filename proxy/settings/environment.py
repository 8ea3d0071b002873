"""The environment a child process starts with (vLLM servers, the trainer, the converter).

Reading `os.environ` belongs to the settings package; a child gets the proxy's environment
(PATH, HF/OMP variables and the like, which the child's own libraries read) with its own
variables on top. Nothing here is configuration of the proxy itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with `overrides` on top."""
    return {**os.environ, **overrides}
