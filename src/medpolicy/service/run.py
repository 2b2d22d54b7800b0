"""`medpolicy serve`: migrate the store, optionally seed demo data, print the address, run uvicorn."""

from __future__ import annotations

import atexit
import gc
import json
import logging
import os
import sys
import threading
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass
from logging.handlers import QueueHandler
from pathlib import Path
from typing import Any

import uvicorn
import yaml

from medpolicy.errors import MedpolicyError
from medpolicy.service.app import create_app
from medpolicy.service.demo_people import DEMO_AGES, demo_parties, demo_pathology_report
from medpolicy.service.logsafe import SafeFormatter
from medpolicy.service.settings import ClientConfig, Settings, SettingsError
from medpolicy.store import Action, LifecycleError, Role, Store, StoreError

log = logging.getLogger("medpolicy.service")

# Demo clients for `make run` (loopback only; used when MEDPOLICY_CLIENTS is not set).
DEMO_CLIENTS = (
    ClientConfig(client_id="demo-ehr", token="demo-ehr-token-change-me"),  # noqa: S106 - demo only
    ClientConfig(client_id="demo-nurse", token="demo-nurse-token-change-me", roles=frozenset({"nurse"})),  # noqa: S106 - demo only
    ClientConfig(
        client_id="demo-physician",
        token="demo-physician-token-change-me",  # noqa: S106 - demo only
        roles=frozenset({"physician"}),
    ),
)

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    # SafeFormatter: exceptions by type and frame only, never a message that may hold request data
    "formatters": {"plain": {"()": "medpolicy.service.logsafe.SafeFormatter"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
    # Everything else (asyncio, sqlalchemy, libraries) through the same safe formatter.
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}


def serve(
    host: str,
    port: int,
    database_url: str | None,
    demo: bool,
    workers: int = 1,
    deployment: Deployment | None = None,
) -> None:
    """Run the service until interrupted. `demo`: demo clients (if none configured) and demo requests.

    ``workers`` > 1 runs that many server processes on one port and one store (each builds its app
    from the environment; CDS JWT ids are then recorded in the store, so no worker accepts a token
    another has seen). ``deployment``: TLS, proxy headers and the public base URL (checked first:
    a `SettingsError` says what is missing before anything starts)."""
    deployment = deployment or Deployment()
    check_deployment(host, port, demo, deployment)
    settings = Settings.from_env()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    if demo and not settings.clients:
        settings = settings.model_copy(update={"clients": DEMO_CLIENTS})
    demo_cds_key = None
    if demo and not os.environ.get("MEDPOLICY_CDS_CLIENTS"):
        # CDS Hooks needs a trusted client: the demo one, its key kept in the data folder. Through the
        # environment, so that every worker process trusts it too.
        from medpolicy.service import demo_cds

        demo_cds_key = demo_cds.key_path(settings.data_dir)
        key = demo_cds.load_or_create_key(demo_cds_key)
        os.environ["MEDPOLICY_CDS_CLIENTS"] = json.dumps(
            {demo_cds.DEMO_ISSUER: {"jwks": demo_cds.public_jwks(key)}}
        )
    app = create_app(settings)
    store: Store = app.state.medpolicy.store
    url = f"{'https' if deployment.ssl_certfile else 'http'}://{host}:{port}"
    lines = [f"medpolicy service on {url}  (store: {_safe_url(settings)})"]
    if demo:
        import io

        from medpolicy.web.cli import DEMO_USERS, seed_demo_users

        seeded = seed_demo(store)
        seed_demo_users(store, out=io.StringIO())
        if seeded:
            lines.append(f"  {seeded} demo prior-authorization requests")
        lines.append(f"  workbench  {url}/   (demo accounts, loopback only)")
        lines += [f"    {role.label:<20} {user} / {password}" for user, password, role, _n in DEMO_USERS]
    lines.append(f"  OpenAPI    {url}/docs    reports {url}/reports")
    if demo and settings.clients == DEMO_CLIENTS:
        for client in DEMO_CLIENTS:
            roles = "+".join(sorted(client.roles))
            lines.append(
                f"  API client {client.client_id:<15} {roles:<10} Authorization: Bearer {client.token}"
            )
    elif not settings.clients:
        lines.append("  no API clients configured (MEDPOLICY_CLIENTS): every /v1 call answers 401")
    if demo_cds_key is not None:
        lines.append(
            "  CDS Hooks  Authorization: Bearer $(.venv/bin/medpolicy cds-token "
            f"{url}/cds-services/medpolicy-crd-order-sign)"
        )
    print("\n".join(lines), flush=True)
    if workers > 1:
        # Migrated and seeded once, here; the workers share the store and the settings, by environment.
        store.close()
        os.environ["DATABASE_URL"] = settings.resolved_database_url
        os.environ["MEDPOLICY_CLIENTS"] = json.dumps(
            {c.client_id: {"token": c.token, "roles": sorted(c.roles)} for c in settings.clients}
        )
        os.environ["MEDPOLICY_CDS_SHARED_REPLAY"] = "1"
        print(
            f"  {workers} worker processes (CDS JWT replay protection shared through the store)", flush=True
        )
        uvicorn.run(
            "medpolicy.service.run:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            access_log=False,
            log_config=LOG_CONFIG,
            # a worker builds its app (policies, code tables) before it answers: seconds on a busy host
            timeout_worker_healthcheck=60,
            **uvicorn_options(deployment),
        )
        return
    _settle_memory()
    listener = log_in_background()
    try:
        uvicorn.run(
            app, host=host, port=port, access_log=False, log_config=LOG_CONFIG, **uvicorn_options(deployment)
        )
    finally:
        listener.stop()


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class Deployment:
    """How `serve` meets the network (see docs/security.md, "Deployment defaults").

    proxy_headers: trust X-Forwarded-Proto/-For from `forwarded_allow_ips` (a TLS proxy in front),
    so that the session cookie is Secure and HSTS is sent when the client spoke HTTPS.
    ssl_certfile/ssl_keyfile: terminate TLS in the service itself.
    public_base_url: the URL clients call (the CDS Hooks JWT audience); never taken from a Host header.
    Required outside `--demo` (or MEDPOLICY_CDS_BASE_URL): `serve` refuses to start without it.
    """

    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    public_base_url: str | None = None


def check_deployment(host: str, port: int, demo: bool, deployment: Deployment) -> None:
    """Refuse a start that would be unsafe (a demo off loopback, half a TLS pair, no public base URL
    outside --demo); set the CDS audience (MEDPOLICY_CDS_BASE_URL) otherwise."""
    if demo and host not in LOOPBACK_HOSTS:
        raise SettingsError(
            f"--demo serves demo accounts and tokens: it listens on loopback only, not on {host!r}"
        )
    if bool(deployment.ssl_certfile) != bool(deployment.ssl_keyfile):
        raise SettingsError("--ssl-certfile and --ssl-keyfile go together")
    for path in (deployment.ssl_certfile, deployment.ssl_keyfile):
        if path and not Path(path).is_file():
            raise SettingsError(f"no such file: {path}")
    base = deployment.public_base_url or os.environ.get("MEDPOLICY_CDS_BASE_URL")
    if not base and demo:
        base = f"{'https' if deployment.ssl_certfile else 'http'}://{host}:{port}"
    if not base:
        raise SettingsError(
            "no public base URL: set --public-base-url (or MEDPOLICY_CDS_BASE_URL) to the URL clients "
            "call, for example https://pa.payer.example; the CDS Hooks JWT audience is never taken from "
            "a Host header (only `medpolicy demo` and `serve --demo`, on loopback, use their own address)"
        )
    if not base.startswith(("https://", "http://")):
        raise SettingsError(f"the public base URL must start with https:// or http://, not {base!r}")
    os.environ["MEDPOLICY_CDS_BASE_URL"] = base.rstrip("/")


def uvicorn_options(deployment: Deployment) -> dict[str, Any]:
    """The keyword arguments `serve` gives uvicorn for `deployment`."""
    return {
        "proxy_headers": deployment.proxy_headers,
        "forwarded_allow_ips": deployment.forwarded_allow_ips if deployment.proxy_headers else None,
        "ssl_certfile": deployment.ssl_certfile,
        "ssl_keyfile": deployment.ssl_keyfile,
        "h11_max_incomplete_event_size": 16 * 1024,  # request line and headers, as GuardMiddleware
    }


def worker_app() -> Any:
    """The app of one worker process of ``serve(workers=N)``, built from the environment."""
    app = create_app(Settings.from_env())
    _settle_memory()
    atexit.register(log_in_background().stop)  # runs as long as the worker does; the last lines at exit
    return app


def _settle_memory() -> None:
    # The policies and the ICD-10-CM code set are ~10^5 long-lived objects: a full garbage collection
    # would walk them all (tens of ms, a latency spike every few seconds under load). Freeze them.
    gc.collect()
    gc.freeze()


def log_in_background(level: int = logging.INFO) -> BatchingListener:
    """Send the `medpolicy` loggers' lines to stderr from a thread, off the request path."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter())
    listener = BatchingListener(handler)
    listener.start()
    logger = logging.getLogger("medpolicy")
    queued = _LeanQueueHandler(listener)  # type: ignore[arg-type]  # put_nowait is all it uses
    queued.setFormatter(SafeFormatter("%(message)s"))  # the queue bakes the message (and traceback) in
    logger.handlers = [queued]
    logger.setLevel(level)
    logger.propagate = False
    return listener


class BatchingListener:
    """`QueueListener` for a busy service: the lines logged meanwhile are written every `interval`
    seconds, in one write and one flush.

    `QueueListener` wakes its thread for every record and writes and flushes each line: under load,
    one thread wake-up and one system call per request (an access-log line each), which cost the
    service more CPU than its whole JSON rendering. Here a record is appended to a deque (no
    wake-up; appends are atomic) and the thread drains it on a timer. A line reaches stderr at most
    `interval` seconds late; `stop` writes what is left."""

    def __init__(self, handler: logging.StreamHandler[Any], interval: float = 0.05) -> None:
        self.handler = handler
        self.interval = interval
        self._records: deque[logging.LogRecord] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def put_nowait(self, record: logging.LogRecord) -> None:
        self._records.append(record)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="medpolicy-log-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Format and write every record queued so far (in order)."""
        records = self._records
        if not records:
            return
        handler = self.handler
        lines = []
        while records:
            record = records.popleft()
            if record.levelno < handler.level:
                continue
            try:
                lines.append(handler.format(record) + handler.terminator)
            except Exception:
                handler.handleError(record)
        if not lines:
            return
        with handler.lock or nullcontext():
            try:
                handler.stream.write("".join(lines))
                handler.flush()
            except Exception:
                handler.handleError(records_lost(len(lines)))


def records_lost(count: int) -> logging.LogRecord:
    """A record standing for `count` lines a write failed to deliver (for `Handler.handleError`)."""
    return logging.LogRecord("medpolicy", logging.ERROR, __file__, 0, "%d log lines lost", (count,), None)


_IMMUTABLE = (str, int, float, type(None))


class _LeanQueueHandler(QueueHandler):
    """A queue handler that leaves the formatting of a plain record (no exception, arguments that are
    strings or numbers, as every access-log line's are) to the listener's thread, whose handler
    formats with `SafeFormatter` too: one formatting per line instead of two, and none of it on the
    event loop. Any other record is baked in here, as `QueueHandler` does."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        args = record.args
        if (
            record.exc_info is None
            and record.stack_info is None
            and isinstance(args, tuple)
            and all(type(a) in _IMMUTABLE for a in args)
        ):
            return record
        baked: logging.LogRecord = super().prepare(record)
        return baked


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class DemoCase:
    name: str
    case: dict[str, Any]
    outcome: str | None  # the outcome the policy's case file expects (None: an error case)


def demo_cases(policies_dir: Path | None = None) -> list[DemoCase]:
    """Every example case under policies/*/cases/*.yaml (lists of {name, case, expect}), in file order."""
    root = policies_dir or Path(__file__).resolve().parents[3] / "policies"
    found: list[DemoCase] = []
    for path in sorted(root.glob("*/cases/*.y*ml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        entries = data if isinstance(data, list) else [data]
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("case"), dict):
                continue
            expect = entry.get("expect") if isinstance(entry.get("expect"), dict) else {}
            outcome = expect.get("outcome") if isinstance(expect, dict) else None
            case = json.loads(json.dumps(entry["case"], default=_iso))
            found.append(DemoCase(str(entry.get("name", path.stem)), case, outcome))
    return found


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# What the demo shows: (expected outcome, what a reviewer or the submitter then does)
DEMO_PLAN: tuple[tuple[str, str | None], ...] = (
    ("medically_necessary", None),  # approved by the engine
    ("investigational", None),  # pending physician review, with the engine's recommendation
    ("investigational", "deny"),  # denied by a physician, with the reason
    ("information_needed", None),  # information needed
    ("information_needed", "withdraw"),  # withdrawn by the submitter
    ("not_medically_necessary", None),  # pending physician review (when the policy has such a case)
    ("not_applicable", None),  # received, for a reviewer to triage
    ("medically_necessary", None),
)


def seed_demo(store: Store, policies_dir: Path | None = None) -> int:
    """Create a handful of demo requests in various states, once (nothing if the store has requests)."""
    if store.count_pa_requests() > 0:
        return 0
    by_outcome: dict[str, list[DemoCase]] = {}
    for demo in demo_cases(policies_dir):
        if demo.outcome:
            by_outcome.setdefault(demo.outcome, []).append(demo)
    created = 0
    for index, (outcome, then) in enumerate(DEMO_PLAN):
        candidates = by_outcome.get(outcome)
        if not candidates:
            continue
        demo = candidates.pop(0)
        parties = demo_parties(index)
        real_clock = store.clock
        if index in DEMO_AGES:  # received a while ago: the queue shows amber and red clocks
            received = real_clock() - DEMO_AGES[index]
            store.clock = lambda received=received: received  # type: ignore[misc]
        try:
            request, _ = store.create_pa_request(
                demo.case,
                submitter="demo-ehr",
                urgency="expedited" if index % 3 == 0 else "standard",
                idempotency_key=f"demo-{index}",
                subject=parties.member.label() if parties.member else None,
            )
            store.clock = real_clock
            store.set_parties(request.id, parties)
            if outcome in ("information_needed", "investigational") and then is None:
                name = parties.member.name if parties.member else "demo"
                store.add_document(
                    request.id,
                    demo_pathology_report(name or "demo"),
                    title="Surgical pathology report",
                    filename="pathology-report.txt",
                    added_by="demo-ehr",
                    source="pas",
                )
            created += 1
            if then == "deny" and request.state == "pending_physician_review":
                store.peer_to_peer(request.id, "offer", actor="physician", role=Role.PHYSICIAN.value)
                store.deny_with_code(
                    request.id,
                    code="investigational",
                    label="The service is investigational for this condition under the medical policy",
                    words="The records show no criterion of the policy that would make it medically necessary.",
                    actor="physician",
                    role=Role.PHYSICIAN.value,
                )
            elif then == "withdraw" and request.state == "information_needed":
                store.apply_action(
                    request.id, Action.WITHDRAW, "demo-ehr", Role.SUBMITTER, reason="demo withdrawal"
                )
        except (StoreError, LifecycleError, MedpolicyError) as exc:
            log.warning("demo case %r not seeded: %s", demo.name, type(exc).__name__)
        finally:
            store.clock = real_clock
    return created


def main(argv: list[str] | None = None) -> None:
    """`python -m medpolicy.service.run [--host H] [--port P] [--database-url URL] [--demo]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m medpolicy.service.run", description=serve.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else SQLite under data/")
    parser.add_argument("--demo", action="store_true", help="demo clients and demo requests")
    parser.add_argument(
        "--public-base-url", default=None, help="the URL clients call (required without --demo)"
    )
    args = parser.parse_args(argv)
    serve(
        args.host,
        args.port,
        args.database_url,
        args.demo,
        deployment=Deployment(public_base_url=args.public_base_url),
    )


if __name__ == "__main__":
    main()
