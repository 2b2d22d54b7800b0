"""`python -m medpolicy` runs the CLI: ``decide FILE.jsonl`` starts without the command-line
framework when it can (``medpolicy.cli_jsonl.fast_decide``), everything else through ``medpolicy.cli``."""

import sys

from medpolicy.cli_jsonl import fast_decide

code = fast_decide(sys.argv[1:])
if code is not None:
    sys.exit(code)

from medpolicy.cli import main  # noqa: E402 -- only when the fast start declined

main()
