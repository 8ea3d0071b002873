"""The Banking77 replay teacher: the harness's replay server with the Banking77 task alone.

Answers the gold intent of a customer's query with the configured accuracy and plausible
confusions otherwise (`bench.tasks.banking77`, `bench.harness.replay_server`).

    python -m bench.banking77.replay_teacher --port 8101 --accuracy 0.92 --latency-ms 300
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.banking77.tokens import load_tokenizer
from bench.harness import replay_server
from bench.harness.label_oracle import ReplayOracle
from bench.harness.replay_server import TeacherConfig, create_app
from bench.harness.tokens import Tokenizer, TokenizerKind
from bench.tasks import banking77
from bench.tasks.labels import LabelAnswerer

__all__ = ["ReplayTeacher", "TeacherConfig", "build_teacher", "create_app", "main"]


class ReplayTeacher(replay_server.ReplayTeacher):
    """A replay teacher whose one task is the oracle's label set (Banking77's prompt)."""

    def __init__(self, cfg: TeacherConfig, oracle: ReplayOracle, tokenizer: Tokenizer) -> None:
        super().__init__(
            cfg, [LabelAnswerer(oracle, tokenizer, banking77.SYSTEM_PROMPT_HEAD)], tokenizer
        )
        self.oracle = oracle


def build_teacher(
    cfg: TeacherConfig,
    data_dir: Path = banking77.DEFAULT_DATA_DIR,
    tokenizer: TokenizerKind = "auto",
) -> ReplayTeacher:
    """Loads the dataset and the tokenizer and returns a ready teacher."""
    labels = banking77.load_categories(data_dir)
    oracle = ReplayOracle(banking77.load_examples(data_dir), labels, cfg.accuracy, cfg.seed)
    return ReplayTeacher(cfg, oracle, load_tokenizer(tokenizer))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    replay_server.add_server_args(p)
    p.add_argument("--accuracy", type=float, default=banking77.DEFAULT_ACCURACY)
    p.add_argument("--data-dir", type=Path, default=banking77.DEFAULT_DATA_DIR)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = replay_server.config_from_args(args, args.accuracy)
    replay_server.serve(build_teacher(cfg, args.data_dir, args.tokenizer), args.host, args.port)


if __name__ == "__main__":
    main()
