"""CPU precision choice and the base-model eval cap: pure config, no model loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.loop.train_config import train_config_from_settings
from proxy.settings import Settings
from trainer.config import TrainConfig
from trainer.hardware import cpu_has_native_bf16


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu avx2 avx512f avx512_bf16", True),
        ("fpu amx_bf16 amx_tile", True),
        ("fpu avx2 avx512f", False),
    ],
)
def test_native_bf16_is_read_from_cpu_flags(tmp_path: Path, flags: str, expected: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_has_native_bf16(cpuinfo) is expected


def test_unreadable_cpuinfo_means_fp32(tmp_path: Path) -> None:
    assert cpu_has_native_bf16(tmp_path / "missing") is False


def test_settings_reach_the_train_config() -> None:
    cfg = train_config_from_settings(Settings(train_cpu_bf16=False, train_eval_base_max_rows=0))
    assert cfg.cpu_bf16 is False and cfg.eval_base_max_rows == 0
    assert TrainConfig().cpu_bf16 is None and TrainConfig().eval_base_max_rows == 50
    with pytest.raises(ValueError, match="eval_base_max_rows"):
        TrainConfig(eval_base_max_rows=-1)
