"""Rules the suite itself keeps, checked, so a new test module cannot quietly break them.

- One way to find the machine's servers: :mod:`tests.servers` (README's overrides), never a
  hard-coded 127.0.0.1:5432 / :6379 that a connection would use.
- A module naming one of the machine's Redis db indexes is in that db's xdist group
  (``tests/conftest.py``), or two workers would flush each other's keys.
- Helpers are imported from normal modules, not from conftest files.
- Background runs start through :func:`tests.procs.popen` (stopped when their test ends).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import _DB_BY_FILE, _DB_BY_FOLDER

TESTS = Path(__file__).resolve().parent
MACHINE_ADDRESS = re.compile(r"(127\.0\.0\.1|localhost):(5432|6379)\b|port=(5432|6379)\b")
# where such an address is text, never connected to: URLs refused before any connection (bad input),
# hand-built results documents, and the one module that owns the addresses
ADDRESS_AS_TEXT = {"servers.py", "test_bad_input.py", "claim_cases.py", "test_suite_rules.py"}
NAMES_A_MACHINE_DB = re.compile(r"\b(machine_redis_db|servers\.redis_url)\(|\bREDIS_DB_(SHARED|STORES|MIGRATE|SAFETY)\b")


def _modules() -> list[tuple[str, str]]:
    return [(p.relative_to(TESTS).as_posix(), p.read_text(encoding="utf-8")) for p in sorted(TESTS.rglob("*.py"))
            if "charts" not in p.parts]


def test_the_machines_servers_are_found_through_tests_servers_only() -> None:
    found = [f"{rel}:{i}: {line.strip()}" for rel, text in _modules() if rel not in ADDRESS_AS_TEXT
             for i, line in enumerate(text.splitlines(), 1)
             if MACHINE_ADDRESS.search(line) and "or 5432" not in line and "or 6379" not in line]
    assert found == [], "use tests.servers (FRIDGEBENCH_TEST_PG_ADMIN_DSN / FRIDGEBENCH_TEST_REDIS_HOST_URL):\n" + \
        "\n".join(found)


def test_every_module_naming_a_machine_redis_db_is_in_its_xdist_group() -> None:
    ungrouped = [rel for rel, text in _modules()
                 if rel not in ("servers.py", "conftest.py", "test_suite_rules.py") and NAMES_A_MACHINE_DB.search(text)
                 and rel not in _DB_BY_FILE and not any(rel.startswith(f + "/") for f in _DB_BY_FOLDER)]
    assert ungrouped == [], f"list these in tests/conftest.py's _DB_BY_FILE (their db's group): {ungrouped}"


# `from conftest import x` works where a test folder has no __init__.py (pytest puts it on sys.path): any form
IMPORTS_A_CONFTEST = re.compile(r"^\s*(from\s+(\w+\.)*conftest\s+import\b|import\s+(\w+\.)*conftest\b)")


def test_no_test_imports_helpers_from_a_conftest() -> None:
    assert all(IMPORTS_A_CONFTEST.match(line) for line in (
        "from conftest import x", "from tests.migrate.conftest import x", "import conftest", "  import tests.conftest"))
    assert not any(IMPORTS_A_CONFTEST.match(line) for line in ("from tests.servers import x", "import conftests"))
    found = [f"{rel}: {line.strip()}" for rel, text in _modules() for line in text.splitlines()
             if IMPORTS_A_CONFTEST.match(line) and rel != "test_suite_rules.py"]
    assert found == [], "\n".join(found)


# servers a context manager stops (tests/servers.py, test_bad_input.py's throwaway Valkey), and a `sleep`
# a test kills itself (test_faults_process.py); everything else runs in the background through tests.procs
POPEN_ALLOWED = {"procs.py", "servers.py", "test_bad_input.py", "faults/test_faults_process.py", "test_suite_rules.py"}


def test_background_runs_start_through_tests_procs() -> None:
    """tests.procs.popen ties a run to the test process and stops it when the test ends (tests/conftest.py):
    a test that fails before its own stop step leaves nothing writing into a shared store."""
    found = [f"{rel}:{i}: {line.strip()}" for rel, text in _modules() if rel not in POPEN_ALLOWED
             for i, line in enumerate(text.splitlines(), 1) if re.search(r"\bPopen\(", line)]
    assert found == [], "start it with tests.procs.popen:\n" + "\n".join(found)
