"""`python -m medpolicy` (and the `medpolicy` command) runs the CLI: ``decide FILE.jsonl`` starts without
the command-line framework when it can (``medpolicy.cli_jsonl.fast_decide``), everything else through
``medpolicy.cli``."""

import gc
import sys


def main() -> None:
    # Start-up allocates hundreds of thousands of objects that live as long as the process (the code
    # table, compiled policies): collecting while they are made finds nothing. `fast_decide` freezes
    # them out of later collections and turns the collector back on (so does the `finally` here).
    gc.disable()
    try:
        from medpolicy.cli_jsonl import fast_decide

        code = fast_decide(sys.argv[1:])
    finally:
        gc.enable()
    if code is not None:
        sys.exit(code)
    from medpolicy.cli import main as full_cli

    full_cli()


if __name__ == "__main__":
    main()
