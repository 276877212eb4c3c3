"""The `santa` command: train and evaluate (Hydra applications, the same overrides as the
checkout's train.py / evaluate.py), prepare, generate, infill, plugins, reports."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from rich.console import Console
from rich.table import Table

from santa.errors import SantaError, print_error

if TYPE_CHECKING:
    from santa.artifacts import Loaded

console = Console(soft_wrap=True)


def load_model(path: str) -> Loaded:
    # Imported lazily: `santa plugins` must not pay for torch and transformers.
    from santa.artifacts import load_model as _load

    return _load(path)


def cmd_plugins(args: argparse.Namespace) -> int:
    from santa import registry

    infos = registry.describe()
    seen: dict[tuple[str, str], str] = {}
    # One table per group (the group is its title): three columns fit 80 columns, and only the
    # import target, the longest, folds.
    for group in registry.GROUPS:
        table = Table(title=group, title_justify="left", expand=False)
        table.add_column("name", no_wrap=True)
        table.add_column("target", overflow="fold")
        table.add_column("distribution", no_wrap=True)
        mine = [i for i in infos if i.group == group]
        for info in mine:
            note = ""
            key = (info.group, info.name)
            if key in seen:
                note = f" [red](shadowed by {seen[key]})[/red]"
            else:
                seen[key] = info.distribution
            table.add_row(info.name + note, info.target, f"{info.distribution} {info.version}")
        if not mine:
            table.add_row("[dim](none installed)[/dim]", "", "")
        console.print(table)
    return 0


def _complete(args: argparse.Namespace, loaded: Loaded, prompt_ids: list[int]) -> str:
    """Generate after ``prompt_ids`` until `<|endoftext|>` or the token budget; return the text."""
    import torch

    from santa.data.tokenizer import special_ids
    from santa.model.generation import generate

    eot = special_ids(loaded.tokenizer).eot
    n_pos = loaded.model.config.n_positions
    if len(prompt_ids) + args.max_new_tokens > n_pos:
        raise SantaError(
            f"prompt ({len(prompt_ids)} tokens) + max_new_tokens ({args.max_new_tokens}) exceeds the "
            f"model's context of {n_pos} tokens; shorten the prompt or lower --max-new-tokens"
        )
    out = generate(
        loaded.model,
        torch.tensor([prompt_ids]),
        args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        eos_token_id=eot,
        generator=torch.Generator().manual_seed(args.seed),
    )
    new = out[0, len(prompt_ids) :].tolist()
    if eot in new:
        new = new[: new.index(eot)]
    # One sequence of ids decodes to one str (transformers types decode for batches too).
    return cast(str, loaded.tokenizer.decode(new))


def cmd_generate(args: argparse.Namespace) -> int:
    loaded = load_model(args.model)
    completion = _complete(args, loaded, loaded.tokenizer.encode(args.prompt, add_special_tokens=False))
    if args.raw:
        sys.stdout.write(completion)
    else:
        console.out(args.prompt, highlight=False, end="")
        console.out(completion, style="green", highlight=False)
    return 0


def cmd_infill(args: argparse.Namespace) -> int:
    from santa.data.fim_format import infill_prompt

    loaded = load_model(args.model)
    middle = _complete(args, loaded, list(infill_prompt(loaded.tokenizer, args.prefix, args.suffix, spm=args.spm)))
    if args.raw:
        sys.stdout.write(middle)
    else:
        console.out(args.prefix, highlight=False, end="")
        console.out(middle, style="bold green", highlight=False, end="")
        console.out(args.suffix, highlight=False)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from santa.eval.sandbox import main as sandbox_main

    return sandbox_main(["--isolation", args.isolation])


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="a .ckpt, an HF export dir, a run dir under outputs/, or a GPTBigCode hub id already in the Hugging Face cache (e.g. bigcode/gpt_bigcode-santacoder)",
    )
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--raw", action="store_true", help="print only the generated text")


# Subcommands living in other modules: each exposes ``add_arguments(parser)`` and
# ``run(args) -> int``, and is imported only when used (so `santa plugins` stays fast).
EXTERNAL: dict[str, tuple[str, str]] = {
    "prepare": ("santa.pipeline.cli", "run the data pipeline alone: redact, filter, dedup, decontaminate"),
    "pii-eval": ("santa.filters.pii_eval", "score PII detection against an annotated JSONL file"),
    "eval-report": ("santa.eval.tables", "one table of every results.json under the given directories"),
    "report": ("santa.sweep.paper_report", "a sweep's tables beside the paper's: report.md, report.csv, plots"),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="santa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in HYDRA_APPS.items():
        # Parsed by Hydra, not here: `santa train --help` is Hydra's help of the composed config.
        sub.add_parser(name, help=help_text, add_help=False)
    p = sub.add_parser("plugins", help="list every registered plugin and the distribution providing it")
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser("generate", help="complete a prompt with a trained model")
    p.add_argument("--prompt", required=True)
    _add_generation_args(p)
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("infill", help="fill in the middle between a prefix and a suffix")
    p.add_argument("--prefix", required=True)
    p.add_argument("--suffix", required=True)
    p.add_argument("--spm", action="store_true", help="suffix-prefix-middle prompt order (default PSM)")
    _add_generation_args(p)
    p.set_defaults(func=cmd_infill)
    p = sub.add_parser(
        "sandbox", help="print what the code-execution sandbox guarantees here, and the toolchains found"
    )
    p.add_argument("--isolation", choices=["auto", "none"], default="auto")
    p.set_defaults(func=cmd_sandbox)
    chosen = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name, (module, help_text) in EXTERNAL.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(func=mod.run)
    return parser


HYDRA_APPS = {
    "train": "train a model: data stages, fit, export (Hydra overrides, as python train.py; conf/train.yaml)",
    "evaluate": "evaluate a model or a samples file on a benchmark (Hydra overrides, as python evaluate.py)",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from santa.signals import stop_with_parent_from_env

    stop_with_parent_from_env()
    if argv and argv[0] in HYDRA_APPS:
        from santa.app import APPS
        from santa.entry import run_app

        # Hydra reads its overrides from sys.argv; it exits itself (0, or 2 for a user error).
        sys.argv = [f"{sys.argv[0]} {argv[0]}", *argv[1:]]
        run_app(APPS[argv[0]])
        return 0
    args = build_parser(argv).parse_args(argv)
    from santa.signals import ignore_signals, signal_of, stop_on_signals

    try:
        # SIGTERM, SIGINT, SIGHUP unwind (every `finally` runs) to one line and 128 + the signal.
        with stop_on_signals():
            return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        ignore_signals()  # this process exits with the interruption's status, whatever comes
        signum = signal_of(exc)
        print_error(SantaError(f"{signal.Signals(signum).name}: santa {args.command} stopped before it finished"))
        return 128 + signum
    except (SantaError, FileNotFoundError) as exc:
        print_error(exc)
        return int(getattr(exc, "exit_code", 2))  # RunInterrupted: 128 + the signal, as a shell says


if __name__ == "__main__":
    sys.exit(main())
