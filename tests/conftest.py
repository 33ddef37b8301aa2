"""Shared fixtures: real SQLite files and a real PostgreSQL database, both migrated to head.

PostgreSQL comes from ``POLLER_TEST_POSTGRES_URL`` (CI sets it). Each test session (each xdist
worker) creates its own database on that server and drops it at the end, so concurrent runs
never see each other's rows. Without the variable the Postgres cases skip locally; under CI
(``CI`` set) a missing server is an error, never a skip.
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest
from filelock import FileLock
from hypothesis import settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from poller.adapters.memory_store import MemoryStore
from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.models import Base
from poller.adapters.sql.store import SqlStore
from tests.wheelhouse import checkout_requirements, pack_installed

POSTGRES_ENV = "POLLER_TEST_POSTGRES_URL"
REPO = Path(__file__).resolve().parent.parent

# Generated cases per property test: enough on every run (CI included) to catch a rule that
# breaks, with the known tricky cases pinned as explicit examples; a change to URL or host
# rules deserves `pytest --hypothesis-profile=thorough`. No deadline: a loaded CI machine is
# not a slow test.
settings.register_profile("default", max_examples=300, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)

# Each test module is in one tier, marked on every test it holds (CONTRIBUTING.md).
# e2e: the daemon runs whole, most often as a `siro-poller` process.
END_TO_END_MODULES = (
    "test_daemon_*",
    "test_demo",
    "test_install",
    "test_scale_e2e",
    "test_simulate",
    "test_twilio_daemon",
)
# contract: a port's contract suite run over each adapter, against its simulator or database.
CONTRACT_MODULES = (
    "test_audit_export",
    # Retention, erasure, deletion at the source and the export over the same calls.
    "test_data_lifecycle_together",
    "test_erasure",
    # The OAuth token store over memory, SQLite and PostgreSQL, against the token endpoint.
    "test_auth_refresh_rotation",
    "test_retention",
    "test_provider_contract",
    "test_provider_aircall",
    "test_provider_callrail",
    "test_provider_cloudtalk",
    "test_provider_dialpad",
    "test_provider_freshcaller",
    "test_provider_justcall",
    "test_provider_ringcentral",
    "test_provider_outreach",
    "test_provider_quo",
    "test_provider_salesloft",
    "test_provider_eightbyeight",
    "test_provider_vonage",
    "test_provider_twilio",
    "test_provider_webex",
    "test_provider_zoom",
    "test_webhook_ringcentral",
    "test_siro_port_contract",
    "test_source_deletion_vendors",
    "test_store_contract*",
    "test_webhook_aircall",
    "test_webhook_dialpad",
    "test_webhook_twilio",
    "test_webhook_zoom",
)


def tier_of(module: str) -> str:
    """``e2e``, ``contract`` or, for every other module, ``unit``."""
    if any(fnmatch(module, pattern) for pattern in END_TO_END_MODULES):
        return "e2e"
    if any(fnmatch(module, pattern) for pattern in CONTRACT_MODULES):
        return "contract"
    return "unit"


# The longest tests first: started last, one of them would run on alone while the other
# xdist workers sit idle. Before the tiers, the modules whose tests take tens of seconds each
# (a package install, a fleet of daemon processes, a benchmark), the longest first.
TIER_ORDER = {"e2e": 0, "contract": 1, "unit": 2}
LONG_MODULES = ("test_install", "test_scale_e2e", "test_demo", "test_bench", "test_daemon_e2e")


def run_order(item: pytest.Item) -> tuple[int, int]:
    module = item.path.stem
    long_rank = LONG_MODULES.index(module) if module in LONG_MODULES else len(LONG_MODULES)
    return long_rank, TIER_ORDER[tier_of(module)]


# Each xdist worker imports every test module to collect it. Where writing bytecode is off
# (below), each worker would rewrite the asserts of all of them and compile them again, six
# seconds of CPU a worker before its first test; pytest keeps its rewritten modules in
# tests/__pycache__ (written atomically, so workers that race are safe) once this is on.
sys.dont_write_bytecode = False


def pytest_configure(config: pytest.Config) -> None:
    """The package compiled once, before the xdist workers start.

    Many tests start ``python -m poller`` as a process on this checkout's code. Where the
    environment forbids writing bytecode (``PYTHONDONTWRITEBYTECODE``, common on CI machines and
    set on ours), each of those processes would compile every module it imports again, a
    quarter of a second of CPU each time; ``compileall`` writes the cache regardless, once.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        compileall.compile_dir(REPO / "poller", quiet=1)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` starts two workers a core, not one.

    Much of an end-to-end test is waiting: for the process it started to import and come up,
    for the daemon's one-second poll and work intervals, for the Retry-After its simulator
    sent. With one worker a core, a core sits idle through each of those waits; with two, the
    other worker's test runs meanwhile.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 * (cores or 1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item.path.stem))
    items.sort(key=run_order)
    # xdist's worksteal hands each worker one contiguous share of this list at the start, and
    # an idle worker takes from the end of another's: dealt round-robin, each share starts with
    # its part of the longest tests (in one share, they would start one after the other).
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    items[:] = [item for first in range(workers) for item in items[first::workers]]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own config, credentials or state directory."""
    for name in list(os.environ):
        if name.startswith("SIRO_POLLER_") or name in ("CREDENTIALS_DIRECTORY", "JOURNAL_STREAM"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))


def postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{POSTGRES_ENV} is not set: CI must run every test on PostgreSQL too")
    pytest.skip(f"{POSTGRES_ENV} not set")


def create_postgres_database(prefix: str = "siro_poller_test") -> str:
    admin_url = make_url(postgres_admin_url())
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    parsed = make_url(url)
    admin = create_engine(
        parsed.set(database=make_url(postgres_admin_url()).database), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database of its own (for migration tests)."""
    url = create_postgres_database("siro_poller_fresh")
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def _postgres_engine() -> Iterator[Engine]:
    url = create_postgres_database()
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def _open_backend(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Engine:
    if backend == "postgres":
        engine: Engine = request.getfixturevalue("_postgres_engine")
        _truncate_all(engine)
        return engine
    template: Path = request.getfixturevalue("_sqlite_template")
    path = tmp_path / "state.sqlite3"
    shutil.copyfile(template, path)
    engine = make_engine(f"sqlite:///{path}")
    request.addfinalizer(engine.dispose)
    return engine


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """A migrated, empty state database on each backend."""
    return _open_backend(request, request.param, tmp_path)


@pytest.fixture
def sql_store(engine: Engine) -> SqlStore:
    return SqlStore(engine)


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryStore | SqlStore:
    """The same contract, run against the in-memory fake and both SQL backends."""
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(_open_backend(request, request.param, tmp_path))


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
def state_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a state database on each backend (PostgreSQL: a fresh database, dropped
    afterwards), for a daemon run as a process; not yet migrated."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite3'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def _made_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], object]
) -> Path:
    """The folder ``name``, made by ``make`` once per test run: the xdist workers of one run share
    it through their common temporary folder."""
    run_folder = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_folder = run_folder.parent  # the workers' folders are in this run's own folder
    made = run_folder / name
    with FileLock(run_folder / f"{name}.lock"):
        if not made.is_dir():
            making = run_folder / f"{name}.making"
            shutil.rmtree(making, ignore_errors=True)
            make(making)
            making.rename(made)  # whole or not at all, for the next worker that asks
    return made


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout built as a wheel by `pip`, once per test run.

    With the build backend this environment installed from the build's declared requirements
    (the test extra names them), not in an isolated build environment: isolated, pip would first
    install them again there, seconds of CPU for the same wheel. That the build needs nothing
    it does not declare, tests/test_install.py proves: install.sh builds the checkout as a
    user's pip does, isolated.
    """

    def build(folder: Path) -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                folder,
                REPO,
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )

    (wheel,) = _made_once(tmp_path_factory, "wheel", build).glob("siro_poller-*.whl")
    return wheel


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of everything installing this checkout with its PostgreSQL extra needs, its build
    included, packed from this environment's installed distributions (tests/wheelhouse.py): for
    a pip given :func:`tests.wheelhouse.offline_pip`, once per test run."""
    return _made_once(
        tmp_path_factory,
        "wheelhouse",
        lambda folder: pack_installed(checkout_requirements(REPO), folder),
    )
