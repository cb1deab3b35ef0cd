"""Security: queries cannot change the registry or reach other files, SQL never carries user values
unparameterised, data files are never executed, and names from input never leave the home folder."""

from __future__ import annotations

import ast
import hashlib
import os
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from typer.testing import CliRunner

from registry import read
from registry.cli import app
from registry.db import writer
from registry.home import PROJECT_ROOT
from registry.ingest import MAX_ARCHIVE_NAME, _archive, ingest_path, safe_file_name
from schemas.families import MAX_FAMILY_LENGTH, family_problem, is_family_key, slugify
from tests.cli import scalereg
from tests.conftest import rows, write_csv

HEADER = "family,run_name,params,tokens,loss"
CODE_FOLDERS = ("registry", "schemas", "pipelines", "laws")


@pytest.fixture
def filled(home, tmp_path):
    data = write_csv(tmp_path / "runs.csv", f"{HEADER}\nmy-model,a,1e8,2e9,3.1\nmy-model,b,2e8,4e9,2.9")
    with writer(home.registry) as con:
        assert ingest_path(con, home, data).status == "ingested"
    return home


def sql_in_process(home, *args: str):
    """The sql command run in this process (fast); the subprocess tests below run it as a user does."""
    result = CliRunner().invoke(app, ["sql", *args], env={"SCALEREG_HOME": str(home.root)})
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- scalereg sql: read-only, and no way out of the registry -----------------------------------

REFUSED = [
    "DELETE FROM runs",
    "DROP TABLE runs",
    "INSERT INTO runs SELECT * FROM runs",
    "UPDATE runs SET loss = 0",
    "CREATE TABLE evil AS SELECT 1",
    "ALTER TABLE runs ADD COLUMN x INT",
    "SELECT 1; DELETE FROM runs",
    "CHECKPOINT; DROP TABLE sources",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET lock_configuration = false",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_csv('{outside}/secret.csv')",
    "SELECT * FROM read_text('{outside}/secret.csv')",
    "COPY runs TO '{outside}/copied.csv'",
    "COPY (SELECT * FROM runs) TO '{outside}/copied.parquet' (FORMAT parquet)",
    "EXPORT DATABASE '{outside}/exported'",
    "ATTACH '{outside}/other.duckdb' AS other",
    "ATTACH '{outside}/other.duckdb' AS other (READ_WRITE); INSERT INTO other.t VALUES (2)",
    "ATTACH '{outside}/new.duckdb' AS other; CREATE TABLE other.t AS SELECT * FROM runs",
    "ATTACH ':memory:' AS m",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_sql_refuses_what_would_change_the_registry_or_touch_other_files(filled, tmp_path, statement):
    import duckdb

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("secret\nhunter2\n")
    other = duckdb.connect(str(outside / "other.duckdb"))
    other.execute("CREATE TABLE t AS SELECT 1 AS a")
    other.close()
    before = {p.name: digest(p) for p in outside.iterdir()}
    registry_before = digest(filled.registry)

    done = sql_in_process(filled, statement.format(outside=outside))

    assert done.exit_code == 1, done.stdout
    assert done.stderr.startswith("scalereg: ") and "Traceback" not in done.stderr
    assert "hunter2" not in done.stdout
    assert {p.name: digest(p) for p in outside.iterdir()} == before  # nothing written, created or changed outside
    assert digest(filled.registry) == registry_before  # the registry file is byte for byte the same


def test_sql_explains_why_files_are_out_of_reach_in_one_line(filled, tmp_path):
    done = scalereg("sql", f"COPY runs TO '{tmp_path}/x.csv'", home=filled.root)
    assert done.returncode == 1 and not (tmp_path / "x.csv").exists()
    assert "the sql command reads only the registry" in done.stderr and "--format csv" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_sql_still_reads_everything_in_the_registry(filled):
    done = scalereg("sql", "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM sources) AS sources",
                    "--format", "csv", home=filled.root)
    assert done.returncode == 0 and done.stdout.splitlines() == ["runs,sources", "2,1"]


# --- SQL is built with parameters, never with user values ---------------------------------------


def _python_files() -> list[Path]:
    return [p for folder in CODE_FOLDERS for p in sorted((PROJECT_ROOT / folder).rglob("*.py"))]


SQL_METHODS = ("execute", "executemany", "sql", "query")


def _scopes(tree: ast.Module) -> list[ast.AST]:
    """The module and each function: names are followed within one scope, as Python binds them."""
    return [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))]


def _own_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of a scope, without those of the functions nested in it."""
    found, todo = [], list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        found.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))
    return found


def _builds_text(node: ast.AST | None, built: set[str], constant: set[str]) -> bool:
    """Is this text made from values: an f-string with fields, ``%``, ``.format``, ``+`` with anything
    but constant text, or a name that was assigned such text?"""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.Name):
        return node.id in built
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return isinstance(node.left, (ast.Constant, ast.Name, ast.JoinedStr)) and not _is_number(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        sides = (node.left, node.right)
        if any(_builds_text(side, built, constant) for side in sides):
            return True
        is_text = any(_is_text(side, constant) for side in sides)
        return is_text and not all(_is_text(side, constant) for side in sides)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return True
    return False


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float))


def _is_text(node: ast.AST, constant: set[str]) -> bool:
    """Constant text: a string literal, a name only ever assigned one, or a sum of those."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Name):
        return node.id in constant
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_text(node.left, constant) and _is_text(node.right, constant)
    return False


def _assignments(nodes: list[ast.AST]) -> list[tuple[str, ast.AST]]:
    pairs = []
    for node in nodes:
        if isinstance(node, ast.Assign):
            pairs += [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name) and node.value:
            value = node.value if isinstance(node, ast.AnnAssign) else ast.BinOp(node.target, node.op, node.value)
            pairs.append((node.target.id, value))
    return pairs


def sql_built_from_values(source: str) -> list[int]:
    """Lines where text built from values reaches DuckDB, directly or through names assigned earlier in the scope."""
    lines = []
    for scope in _scopes(ast.parse(source)):
        nodes = _own_nodes(scope)
        assigned = _assignments(nodes)
        built: set[str] = set()
        constant = {name for name, value in assigned if isinstance(value, ast.Constant) and isinstance(value.value, str)}
        changed = True
        while changed:  # follow chains (q = f"..."; r = q + "..."), whatever order they are written in
            changed = False
            for name, value in assigned:
                if name not in built and _builds_text(value, built, constant):
                    built.add(name)
                    constant.discard(name)
                    changed = True
            constant -= {name for name, value in assigned if not _is_text(value, constant)}
        for node in nodes:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_METHODS:
                query = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "query"), None)
                if _builds_text(query, built, constant):
                    lines.append(node.lineno)
    return sorted(lines)


def test_no_sql_is_built_from_values():
    """Every query handed to DuckDB is constant text, with values passed as parameters."""
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{line}"
        for path in _python_files() for line in sql_built_from_values(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ("def f(con, t):\n    return con.execute(f'SELECT * FROM {t}')", [2]),
        ("def f(con, t):\n    query = f'SELECT * FROM {t}'\n    return con.execute(query)", [3]),
        ("def f(con, t):\n    query = 'SELECT * FROM {}'.format(t)\n    con.sql(query)", [3]),
        ("def f(con, t):\n    query = 'SELECT * FROM %s' % t\n    con.sql(query=query)", [3]),
        ("def f(con, t):\n    query = 'SELECT * FROM ' + t\n    con.executemany(query, [])", [3]),
        ("def f(con, t):\n    base = f'SELECT * FROM {t}'\n    query = base + ' LIMIT 1'\n    con.sql(query)", [4]),
        ("def f(con, t):\n    query = 'SELECT 1'\n    query += t\n    con.sql(query)", [4]),
        ("def f(con, family):\n    query = 'SELECT * FROM runs'\n    con.sql(query + ' WHERE family = ?', params=[family])", []),
        ("def f(con, t):\n    query = f'SELECT * FROM {t}'\n\ndef g(con, query):\n    con.sql(query)", []),
        ("QUERY = 'SELECT 1'\ndef f(con):\n    con.execute(QUERY)\n    print(f'{con}')", []),
    ],
)
def test_the_sql_check_follows_text_built_one_line_earlier(source, lines):
    assert sql_built_from_values(source) == lines


def test_values_that_look_like_sql_are_only_data(con, home, tmp_path):
    hostile = "x' OR '1'='1"
    path = write_csv(tmp_path / "runs.csv", f"{HEADER}\nmy-model,\"{hostile}\",1e8,2e9,3.1\nmy-model,b,2e8,4e9,2.9")
    ingest_path(con, home, path, name="a'); DROP TABLE runs; --")
    assert rows(con, "SELECT name FROM sources") == [("a'); DROP TABLE runs; --",)]
    assert rows(con, "SELECT run_name FROM runs ORDER BY run_name") == [("b",), (hostile,)]
    assert read.runs(con, "my-model' OR '1'='1").height == 0


# --- data files are parsed, never executed --------------------------------------------------------


class _Payload:
    """Unpickling this creates ``marker``: if the file ever appears, something loaded a pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib", ".csv", ".jsonl", ".parquet", ".txt"])
def test_a_pickle_is_never_loaded_whatever_its_name(con, home, tmp_path, protocol, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"runs{suffix}"
    path.write_bytes(pickle.dumps([_Payload(marker)], protocol=protocol))
    report = ingest_path(con, home, path)
    assert not marker.exists()
    assert report.status == "failed" and path.name in report.error and "bug in scalereg" not in report.error
    if suffix in (".pkl", ".pickle", ".joblib") or protocol >= 2:
        assert "pickle" in report.error or "refused" in report.error


def test_the_code_never_unpickles_or_evaluates():
    forbidden_modules = {"pickle", "cPickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
                names = [node.func.id]
            offenders += [f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {n}" for n in names if n in forbidden_modules | {"eval", "exec"}]
    assert offenders == []


# --- family keys: validated before they become partition keys, file names or SQL values ----------


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=80))
def test_a_family_key_is_always_a_safe_name(value):
    if is_family_key(value):
        assert re.fullmatch(r"[a-z0-9-]{1,64}", value) and not value.startswith("-") and not value.endswith("-")
        assert Path(value).name == value and value not in (".", "..")
        assert family_problem(value) is None
    else:
        assert family_problem(value)
    slug = slugify(value)
    assert slug == "" or is_family_key(slug)


@pytest.mark.parametrize(
    "value", ["fam\n", "fam\r\n", "../fam", "fam/x", "fam\\x", "Fam", "fam ", " fam", "fam'", "fam;", "-fam", "fam-", "f" * 65, "ﬁ", "ｆａｍ", ""]
)
def test_values_that_are_not_keys(value):
    assert not is_family_key(value) and family_problem(value)


def test_the_family_option_is_checked_before_anything_is_written(home, tmp_path):
    data = write_csv(tmp_path / "runs.csv", "params,tokens,loss\n1e8,2e9,3.1")
    done = scalereg("ingest", str(data), "--family", "../../etc", home=home.root)
    assert done.returncode == 1 and "did you mean 'etc'?" in done.stderr and "Traceback" not in done.stderr
    assert not home.registry.exists() or scalereg("sql", "select count(*) as n from sources", "--format", "csv",
                                                  home=home.root).stdout.splitlines() == ["n", "0"]


def test_a_family_given_through_the_api_is_validated_too(con, home, tmp_path):
    data = write_csv(tmp_path / "runs.csv", "params,tokens,loss\n1e8,2e9,3.1")
    report = ingest_path(con, home, data, family="../../etc")
    assert (report.rows_accepted, report.rows_rejected) == (0, 1)
    assert rows(con, "SELECT count(*) FROM runs") == [(0,)]


def test_a_family_key_may_be_as_long_as_the_limit_and_no_longer(con, home, tmp_path):
    longest, too_long = "f" * MAX_FAMILY_LENGTH, "f" * (MAX_FAMILY_LENGTH + 1)
    data = write_csv(tmp_path / "runs.csv", f"family,params,tokens,loss\n{longest},1e8,2e9,3.1\n{too_long},2e8,2e9,3.0")
    report = ingest_path(con, home, data)
    assert (report.rows_accepted, report.rows_rejected) == (1, 1)
    assert rows(con, "SELECT family FROM runs") == [(longest,)]
    assert MAX_FAMILY_LENGTH == 64  # the limit the README documents ("1-64 of a-z 0-9 -")


# --- paths from input never leave the home folder ------------------------------------------------


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(min_size=1, max_size=300))
def test_an_archived_name_is_always_one_plain_file(name):
    safe = safe_file_name(name)
    assert safe and safe not in (".", "..") and not safe.startswith(".")
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert len(safe) <= MAX_ARCHIVE_NAME and Path(safe).name == safe


@pytest.mark.parametrize(
    "name", ["..csv", "...csv", ".hidden.csv", "a;b'c\".csv", "名前.csv", "-rf.csv", "x" * 240 + ".csv", "a\nb.csv", "CON.csv"]
)
def test_odd_file_names_are_archived_inside_the_home(con, home, tmp_path, name):
    path = write_csv(tmp_path / name, f"{HEADER}\nmy-model,a,1e8,2e9,3.1")
    report = ingest_path(con, home, path)
    assert report.status == "ingested", report.error
    (archived,) = rows(con, "SELECT archive_path FROM sources")[0]
    archived = Path(archived)
    assert archived.parent == home.archive.resolve() / report.sha256[:2] / report.sha256
    assert archived.read_bytes() == path.read_bytes()


def test_the_archive_refuses_anything_but_a_content_hash(home, tmp_path):
    path = write_csv(tmp_path / "a.csv", f"{HEADER}\nmy-model,a,1e8,2e9,3.1")
    with pytest.raises(ValueError, match="sha256"):
        _archive(home, path, "../../../outside")


def test_the_landing_folder_does_not_reach_outside_the_home(home, tmp_path):
    outside = write_csv(tmp_path / "outside.csv", f"{HEADER}\nmy-model,a,1e8,2e9,3.1")
    assert not home.contains(home.landing / ".." / ".." / "outside.csv")
    assert not home.contains(Path("/etc/passwd"))
    link = home.landing / "link.csv"
    os.symlink(outside, link)
    assert not home.contains(link)  # a symlink out of the landing folder is outside too
    assert home.contains(home.landing / "fine.csv")


def test_a_file_name_cannot_drive_the_terminal(home, tmp_path):
    path = write_csv(tmp_path / "evil\x1b[2J.csv", f"{HEADER}\nmy-model,a,1e8,2e9,3.1")
    result = CliRunner().invoke(app, ["ingest", str(path)], env={"SCALEREG_HOME": str(home.root)})
    assert result.exit_code == 0 and "\x1b" not in result.stdout and "evil\\x1b[2J.csv: ingested" in result.stdout
