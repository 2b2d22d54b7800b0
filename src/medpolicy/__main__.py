"""`python -m medpolicy` runs the CLI."""

from medpolicy.cli import main

main()
