"""The ``medpolicy`` command line. A face: it parses input, calls the core and renders the result.

Exit codes: 0 decided (or all checks passed), 2 bad input (an invalid case, an invalid policy file,
unreadable JSON), 1 internal error or failing policy cases.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from rich.console import Console

from medpolicy import __version__, cli_extract, cli_help, cli_screen, strictjson
from medpolicy.cli_audit import audit_app
from medpolicy.cli_jsonl import decide_jsonl, error_json, is_jsonl
from medpolicy.deciding import decide
from medpolicy.errors import CaseError, MedpolicyError, PolicyLoadError
from medpolicy.policy import PolicySet, load_policies

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2

app = typer.Typer(
    name="medpolicy",
    help=(
        "Medical policies as versioned, citable policy-as-code.\n\n"
        "Exit codes: 0 decided / checks passed; 2 bad input (invalid case, invalid policy file, "
        "unreadable JSON); 1 internal error or failing policy cases."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cli_help.install()  # --help shows FILE and HOST, not <str> and <bool>

policy_app = typer.Typer(help="Inspect, check, scaffold and compare policies.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
cli_extract.register(app)  # medpolicy extract FILE...

out = Console()
err = Console(stderr=True, soft_wrap=True)  # error lines stay whole: people grep and copy them

PoliciesOpt = Annotated[
    Path | None,
    typer.Option(
        "--policies",
        help="Folder of policy folders (default: the repository's policies/).",
        show_default=False,
    ),
]


def _load(root: Path | None) -> PolicySet:
    try:
        return load_policies(root)
    except PolicyLoadError as e:
        err.print("[bold red]invalid policy[/]")
        for p in e.problems:
            err.print(f"  {p}", markup=False, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _read_json(src: BinaryIO, name: str) -> Any:
    """The strict loader the service uses: no NaN, huge integers, lone surrogates, duplicate keys or
    deep nesting (exit 2, with the reason)."""
    try:
        return strictjson.loads(src.read())
    except strictjson.JsonInputError as e:
        err.print(f"[bold red]invalid_json[/] {name}: {e}", highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _print_case_error(e: CaseError) -> None:
    err.print("[bold red]invalid case[/]")
    for fe in e.errors:
        err.print(
            f"  {fe.field}: {fe.message} (value {fe.value!r}) [{fe.code}]", markup=False, highlight=False
        )


@app.command("decide")
def decide_cmd(
    file: Annotated[
        str, typer.Argument(help="A case as JSON, a .jsonl file of cases, or - for stdin.")
    ] = "-",
    as_json: Annotated[bool, typer.Option("--json", help="Print the determination as JSON.")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Also print the criteria tree with each value.")
    ] = False,
    policy_id: Annotated[
        str | None, typer.Option("--policy", help="Policy id (default: chosen by procedure codes).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSONL output file (default: stdout).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="JSONL: full trace and rationale text on every line.")
    ] = False,
    policies_dir: PoliciesOpt = None,
) -> None:
    """Decide a case (JSON) or a batch of cases (JSON lines: one determination per line)."""
    policies = _load(policies_dir)
    if is_jsonl(file):
        raise typer.Exit(_decide_jsonl(Path(file), policies, policy_id, output, full))
    if file == "-":
        raw = _read_json(sys.stdin.buffer, "stdin")
    else:
        try:
            with open(file, "rb") as fh:
                raw = _read_json(fh, file)
        except OSError as e:
            err.print(f"[bold red]cannot read[/] {file}: {e.strerror}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
    from medpolicy.extract.proposal import case_and_sources  # not needed for JSON lines

    raw, sources = case_and_sources(raw)  # an extraction record (medpolicy extract --json) as it is
    try:
        d = decide(raw, policies, policy_id=policy_id, sources=sources)
    except CaseError as e:
        if as_json:
            print(strictjson.dumps_safe({"error": error_json(e)}, indent=2))
        else:
            _print_case_error(e)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except MedpolicyError as e:
        err.print(f"[bold red]{e.code}[/] {e}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        print(strictjson.dumps_safe(d.to_dict(), indent=2))
    else:
        from medpolicy.render import determination_view, explain_tree  # only the human view needs rich tables

        out.print(determination_view(d))
        if explain:
            out.print(explain_tree(d))


@app.command("explain")
def explain_cmd(
    file: Annotated[str, typer.Argument(help="A case as JSON, or - for stdin.")] = "-",
    policy_id: Annotated[str | None, typer.Option("--policy")] = None,
    policies_dir: PoliciesOpt = None,
) -> None:
    """Print the applied version's whole criteria tree with each criterion's value and citation."""
    decide_cmd(
        file,
        as_json=False,
        explain=True,
        policy_id=policy_id,
        output=None,
        full=False,
        policies_dir=policies_dir,
    )


def _decide_jsonl(
    path: Path, policies: PolicySet, policy_id: str | None, output: Path | None, full: bool
) -> int:
    try:
        src = path.open("rb")
    except OSError as e:
        err.print(f"[bold red]cannot read[/] {path}: {e.strerror}", highlight=False)
        return EXIT_BAD_INPUT
    with src:
        return decide_jsonl(src, path, policies, policy_id, output, full, err)


@policy_app.command("list")
def policy_list(policies_dir: PoliciesOpt = None) -> None:
    """List the policies with their versions."""
    from rich.table import Table

    t = Table("id", "title", "publisher", "versions", "current since")
    for p in _load(policies_dir):
        t.add_row(p.id, p.title, p.publisher, str(len(p.versions)), str(p.versions[-1].effective_from))
    out.print(t)


@policy_app.command("show")
def policy_show(policy_id: str, policies_dir: PoliciesOpt = None) -> None:
    """Show a policy: versions, criteria, billing codes, facts and parameters."""
    from medpolicy.render import policy_view

    policies = _load(policies_dir)
    try:
        out.print(policy_view(policies.get(policy_id)))
    except MedpolicyError as e:
        err.print(f"[bold red]{e.code}[/] {e}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


@policy_app.command("check")
def policy_check(
    policies_dir: PoliciesOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every case.")] = False,
    with_coverage: Annotated[
        bool,
        typer.Option("--coverage", help="Report each criterion the cases drove true, false and unknown."),
    ] = False,
) -> None:
    """Load every policy (schema, facts, verbatim citations) and run its cases."""
    from rich.table import Table

    from medpolicy.checking import run_cases

    policies = _load(policies_dir)
    failed = 0
    for p in policies:
        try:
            results = run_cases(p)
        except PolicyLoadError as e:
            for prob in e.problems:
                err.print(f"  {prob}", markup=False, highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        bad = [r for r in results if not r.ok]
        failed += len(bad)
        if verbose:
            t = Table("case", "outcome", "result")
            for r in results:
                t.add_row(r.case.name, r.outcome, "[green]ok[/]" if r.ok else "[red]FAIL[/]")
            out.print(t)
        for r in bad:
            err.print(f"[red]FAIL[/] {p.id}: {r.case.name} ({r.case.file}:{r.case.line})", highlight=False)
            for f in r.failures:
                err.print(f"     {f}", markup=False, highlight=False)
        cites = sum(len(c.cite) for v in p.versions for c in v.criteria())
        out.print(
            f"{p.id}: {len(p.versions)} versions, {cites} citations verified verbatim, "
            f"{len(results) - len(bad)}/{len(results)} cases pass"
        )
        if not results:
            err.print(f"[yellow]{p.id} has no cases: a policy without cases is unfinished[/]")
            failed += 1
        if p.review_by is not None and p.review_by < date.today():
            err.print(
                f"[yellow]warning[/] {p.id}: the policy's review date {p.review_by} is past "
                f"(last updated {p.last_updated}); determinations after it carry policy_review_overdue",
                highlight=False,
            )
        if with_coverage:
            from medpolicy.cli_coverage import print_coverage

            failed += print_coverage(p, out, err)
    if failed:
        raise typer.Exit(EXIT_INTERNAL)


@app.command("examples")
def examples(policies_dir: PoliciesOpt = None) -> None:
    """Decide the bundled example cases and print them as a table."""
    from rich.table import Table

    from medpolicy.checking import run_cases
    from medpolicy.render import OUTCOME_STYLE

    policies = _load(policies_dir)
    for p in policies:
        t = Table(
            "example",
            "outcome",
            "version",
            "why / what is missing",
            title=f"{p.title}: example cases",
            expand=True,
        )
        for r in run_cases(p):
            if "errors" in r.case.expect:
                continue
            d = decide(r.case.case, p)
            t.add_row(
                r.case.name,
                f"[{OUTCOME_STYLE[d.outcome]}]{d.outcome.value}[/]",
                d.version.id if d.version else "-",
                d.summary,
            )
        out.print(t)


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="SQLAlchemy URL (default: $DATABASE_URL, else SQLite under ./data)."
        ),
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Seed demo clients, accounts and requests.")] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes sharing the port and the store.")
    ] = 1,
    proxy_headers: Annotated[
        bool, typer.Option("--proxy-headers", help="Trust X-Forwarded-* from --forwarded-allow-ips.")
    ] = False,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option("--forwarded-allow-ips", help="Proxies trusted for X-Forwarded-* (comma-separated)."),
    ] = "127.0.0.1",
    ssl_certfile: Annotated[str | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[str | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM).")] = None,
    public_base_url: Annotated[
        str | None,
        typer.Option(
            "--public-base-url",
            help="The URL clients call (CDS Hooks JWT audience); required outside --demo "
            "(or MEDPOLICY_CDS_BASE_URL).",
        ),
    ] = None,
) -> None:
    """Run the HTTP service (our API, CDS Hooks/CRD, DTR, PAS and the reviewer workbench)."""
    from medpolicy.service.run import Deployment, serve  # the service stack loads only for this command
    from medpolicy.service.settings import SettingsError

    deployment = Deployment(proxy_headers, forwarded_allow_ips, ssl_certfile, ssl_keyfile, public_base_url)
    try:
        serve(host, port, database_url, demo, workers, deployment)
    except SettingsError as e:
        err.print(f"[bold red]cannot start[/] {e}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


@app.command("demo")
def demo_cmd(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    policies_dir: PoliciesOpt = None,
) -> None:
    """What `make run` does: check the bundled example cases, then serve on 127.0.0.1 with demo data
    (the addresses and demo credentials are printed last; `medpolicy examples` prints the table)."""
    from collections import Counter

    from medpolicy.checking import run_cases

    counts: Counter[str] = Counter()
    for p in _load(policies_dir):
        for r in run_cases(p):
            counts["passed" if r.ok else "failed"] += 1
    out.print(f"example cases: {counts['passed']} decided as their files expect, {counts['failed']} not")
    serve_cmd("127.0.0.1", port, None, demo=True, workers=1)


@app.command("cds-token")
def cds_token(
    audience: Annotated[
        str,
        typer.Argument(
            help="The exact URL to call, e.g. http://127.0.0.1:8000/cds-services/medpolicy-crd-order-sign"
        ),
    ],
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", help="The demo client's key (default: demo-cds-client.pem in the data folder)."
        ),
    ] = None,
) -> None:
    """Print a signed CDS Hooks client JWT from the demo client that `make run` trusts (for curl)."""
    from medpolicy.service import demo_cds
    from medpolicy.service.settings import Settings

    path = key or demo_cds.key_path(Settings.from_env().data_dir)
    if not audience.startswith(("http://", "https://")):
        err.print(
            f"[bold red]invalid_audience[/] audience={audience!r}: the URL the token is for", highlight=False
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        private = demo_cds.load_key(path)
    except FileNotFoundError:
        err.print(
            f"[bold red]no_demo_key[/] {path}: there is no demo CDS client key; `make run` makes one",
            highlight=False,
        )
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (ValueError, TypeError) as e:  # not a PEM key, the wrong curve, or encrypted
        err.print(f"[bold red]invalid_key[/] {path}: {e}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    print(demo_cds.sign_token(private, audience))


user_app = typer.Typer(help="Workbench accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option("--role", help="nurse, physician or admin.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: the username).")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="SQLAlchemy URL (default: $DATABASE_URL, else SQLite under ./data)."
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="Read from $MEDPOLICY_PASSWORD or a prompt when not given.",
            envvar="MEDPOLICY_PASSWORD",
        ),
    ] = None,
) -> None:
    """Create a reviewer account for the workbench (the password is asked for, hidden, twice)."""
    from medpolicy.service.settings import Settings
    from medpolicy.web.cli import add_user
    from medpolicy.web.users import UserError

    secret = password or typer.prompt("password", hide_input=True, confirmation_prompt=True)
    url = database_url or Settings.from_env().resolved_database_url
    try:
        user = add_user(url, username, secret, role, display_name=name)
    except UserError as e:
        err.print(f"[bold red]{e.code}[/] {e}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    out.print(f"created {user.role} account {user.username!r}")


cli_screen.register(app)  # screen, impact, generate-claims (batch claims screening)


@app.command("version")
def version() -> None:
    """Print the medpolicy version."""
    print(__version__)


# `medpolicy policy new` and `policy diff` (tools for policy authors) live in their own module.
from medpolicy import cli_policy_tools  # noqa: E402 -- registers into policy_app, defined above

cli_policy_tools.register(policy_app)


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except Exception as e:  # the last resort of a CLI: say so, exit 1
        err.print(f"[bold red]internal error[/] {type(e).__name__}: {e}", highlight=False)
        sys.exit(EXIT_INTERNAL)
