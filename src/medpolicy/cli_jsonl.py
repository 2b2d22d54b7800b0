"""``medpolicy decide FILE.jsonl``: one determination (or error) line per case line, and a start that
skips the command-line framework for it.

Batch runs are dominated by their per-line loop and their start-up. ``python -m medpolicy decide
cases.jsonl`` is parsed here first (``fast_decide``): when the arguments are the plain JSON-lines form
and stderr is no terminal (no progress bar), the run needs neither Typer nor Rich, which together take
about a fifth of the start-up. Anything else (another command, ``--help``, an unknown or repeated
option, a policy that does not load, a file that cannot be opened) returns ``None`` before any output,
and the full CLI (``medpolicy.cli``) runs instead and answers exactly as it always did.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medpolicy import strictjson
from medpolicy.deciding import decider
from medpolicy.errors import CaseError, MedpolicyError
from medpolicy.policy import PolicySet, load_policies

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "decide_jsonl",
    "error_json",
    "fast_decide",
    "is_jsonl",
]

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2
#: Lines are written in blocks: one write per this many lines, not one per line.
BLOCK_LINES = 512

# The `medpolicy decide` options the fast start understands: those that take a value, and flags.
_OPTIONS = {"--policy": "policy", "--output": "output", "-o": "output", "--policies": "policies"}
_FLAGS = {"--full": "full"}


def is_jsonl(file: str) -> bool:
    return file.endswith(".jsonl") or file.endswith(".ndjson")


def error_json(e: MedpolicyError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": e.code, "message": str(e)}
    if isinstance(e, CaseError):
        body["errors"] = [fe.to_dict() for fe in e.errors]
    return body


def _stderr_console() -> Console:
    from rich.console import Console  # only for messages and the progress bar: rare in batch runs

    return Console(stderr=True, soft_wrap=True)  # the same console as medpolicy.cli's ``err``


def _may_show_progress() -> bool:
    """Whether Rich could take stderr for a terminal (then the progress bar shows, and the full CLI
    runs): a tty, or the variables that force Rich's answer."""
    if "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True


def _parse(argv: list[str]) -> dict[str, Any] | None:
    """``decide FILE.jsonl`` with ``--policy ID``, ``--output/-o FILE``, ``--policies DIR`` and
    ``--full`` in any order, each at most once; None for anything else."""
    if not argv or argv[0] != "decide":
        return None
    got: dict[str, Any] = {}
    files: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        value: str | bool | None
        if arg in _FLAGS:
            name, value = _FLAGS[arg], True
        elif arg.startswith("-"):
            opt, eq, inline = arg.partition("=")
            if opt not in _OPTIONS or (eq and opt == "-o"):
                return None  # unknown, --help, "-", "--", or a form left to the framework
            name = _OPTIONS[opt]
            value = inline if eq else next(args, None)
            if value is None:
                return None
        else:
            files.append(arg)
            continue
        if name in got:
            return None
        got[name] = value
    if len(files) != 1 or not is_jsonl(files[0]):
        return None
    got["file"] = files[0]
    return got


def fast_decide(argv: list[str]) -> int | None:
    """Run ``medpolicy decide FILE.jsonl`` without the CLI framework and return its exit code, or
    None (having written nothing) when the full CLI must run instead."""
    args = _parse(argv)
    if args is None or _may_show_progress():
        return None
    policies_dir = args.get("policies")
    try:
        policies = load_policies(Path(policies_dir) if policies_dir is not None else None)
    except Exception:  # a PolicyLoadError or worse: the full CLI meets it again and says so
        return None
    path = Path(args["file"])
    try:
        src = path.open("rb")
    except OSError:
        return None  # the full CLI says why it cannot read it
    output = args.get("output")
    # What start-up made lives until exit: keep the collector from walking it again and again while
    # lines are decided (a full collection walks every object the process holds). A line's objects die
    # by reference counting; what survives is the bounded caches' entries, so the young generation
    # is collected every 50,000 allocations, not every 700 (100,000 lines: collections 60 -> 24 ms).
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
    gc.enable()
    try:
        with src:
            return decide_jsonl(
                src,
                path,
                policies,
                args.get("policy"),
                Path(output) if output is not None else None,
                args.get("full", False),
            )
    except BrokenPipeError:  # the reader left (`| head`): exit 1 quietly, as Click does for the full CLI
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return EXIT_INTERNAL
    except Exception as e:  # the last resort, as in medpolicy.cli.main: say so, exit 1
        _stderr_console().print(f"[bold red]internal error[/] {type(e).__name__}: {e}", highlight=False)
        return EXIT_INTERNAL


def decide_jsonl(
    src: Any,
    path: Path,
    policies: PolicySet,
    policy_id: str | None,
    output: Path | None,
    full: bool,
    err: Console | None = None,
) -> int:
    """Decide every line of ``src`` (the open file at ``path``) and write one line each: the compact
    determination, or ``{"line", "id", "error"}``. Blank lines are skipped. Exit 2 when any line was
    bad input. An unknown ``policy_id`` is bad input too (exit 2), said before anything is written."""
    try:
        decide_one = decider(policies, policy_id=policy_id)
    except MedpolicyError as e:
        (err or _stderr_console()).print(f"[bold red]{e.code}[/] {e}", highlight=False)
        return EXIT_BAD_INPUT
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    detail = "full" if full else "compact"
    bad = 0
    progress = None
    if err is not None and err.is_terminal:
        from rich.progress import Progress

        total = sum(1 for _ in path.open("rb"))
        progress = Progress(console=err, transient=True)
        task = progress.add_task("deciding", total=total)
        progress.start()
    # Each output line is one string in `block` (no newline), joined and written every BLOCK_LINES.
    block: list[str] = []
    write = block.append
    dumps = strictjson.dumps_safe
    loads = strictjson.loads
    try:
        for n, line in enumerate(src, 1):
            try:
                raw = loads(line)
                write(decide_one(raw).to_json(detail=detail))
            except strictjson.JsonInputError as e:
                if not line.strip():  # blank lines are skipped, not errors
                    continue
                bad += 1
                write(dumps({"line": n, "error": {"code": "invalid_json", "message": str(e)}}))
            except MedpolicyError as e:
                bad += 1
                rid = raw.get("id") if isinstance(raw, dict) else None
                write(dumps({"line": n, "id": rid, "error": error_json(e)}))
            if len(block) >= BLOCK_LINES:
                block.append("")
                sink.write("\n".join(block))
                block.clear()
                if progress is not None:
                    progress.update(task, completed=n)
        if progress is not None:
            progress.stop()
    finally:
        if block:  # what was decided before any failure is still written
            block.append("")
            sink.write("\n".join(block))
        if output:
            sink.close()
    if bad:
        (err or _stderr_console()).print(f"{bad} line(s) rejected as bad input (see their error lines)")
        return EXIT_BAD_INPUT
    return EXIT_OK
