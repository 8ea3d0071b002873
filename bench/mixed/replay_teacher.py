"""The mixed benchmark's replay teacher: one OpenAI-compatible server answering for every
task, each request by the task whose prompt it carries (`bench.harness.replay_server`).

    python -m bench.mixed.replay_teacher --port 8101 --task banking77=0.92 --task snips
"""

from __future__ import annotations

import argparse

from bench.banking77.tokens import load_tokenizer
from bench.harness import replay_server
from bench.harness.replay_server import ReplayTeacher
from bench.mixed.config import build_tasks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    replay_server.add_server_args(p)
    p.add_argument(
        "--task", action="append", required=True, metavar="NAME[=ACCURACY]",
        help="a task to answer for, at its stated accuracy unless given",
    )  # fmt: skip
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> ReplayTeacher:
    wanted: dict[str, float | None] = {}
    for item in args.task:
        name, sep, value = item.partition("=")
        wanted[name] = float(value) if sep else None
    tasks = build_tasks(list(wanted))
    tokenizer = load_tokenizer(args.tokenizer)
    answerers = [t.answerer(wanted[n], args.seed, tokenizer) for n, t in tasks.items()]
    stated = {n: a if a is not None else tasks[n].default_accuracy for n, a in wanted.items()}
    cfg = replay_server.config_from_args(args, next(iter(stated.values())) or 1.0)
    cfg.task_accuracy = {n: a for n, a in stated.items() if a is not None}
    return ReplayTeacher(cfg, answerers, tokenizer)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    replay_server.serve(build(args), args.host, args.port)


if __name__ == "__main__":
    main()
