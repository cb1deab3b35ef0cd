"""Declarative mappings read real-world exports without code: renamed columns, suffixes, log10, no header."""

from __future__ import annotations

import pytest

from registry.ingest import ingest_path
from tests.conftest import rows, write_csv


def mapping(tmp_path, text):
    path = tmp_path / "map.toml"
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def test_a_headerless_csv_is_read_by_column_position(con, home, tmp_path):
    data = write_csv(tmp_path / "export.csv", "gpt-small,125000000,2500000000,3.3\ngpt-medium,350000000,7000000000,2.9")
    spec = mapping(tmp_path, """
family = "gpt-sweep"
header = false
loss_name = "val/c4"
[columns]
run_name = "0"
params = "1"
tokens = "2"
loss = "3"
""")
    report = ingest_path(con, home, data, mapping=spec)
    assert (report.status, report.rows_accepted) == ("ingested", 2)
    assert rows(con, "SELECT run_name, params, tokens, loss, loss_name FROM runs ORDER BY params") == [
        ("gpt-small", 125e6, 2.5e9, 3.3, "val/c4"),
        ("gpt-medium", 350e6, 7e9, 2.9, "val/c4"),
    ]


def test_suffixed_and_log10_columns_are_converted_and_the_family_is_slugified(con, home, tmp_path):
    data = write_csv(
        tmp_path / "sweep.csv",
        'num_params,num_token,data,loss,notes\n2.8B,10.5,"C4 Web",2.4,first\n70M,9.0,"C4 Web",3.6,second\n11%,9.0,"C4 Web",3.6,third',
    )
    spec = mapping(tmp_path, """
family_column = "data"
[columns]
params = "num_params"
tokens = "num_token"
loss = "loss"
[transforms]
params = "suffix"
tokens = "log10"
""")
    report = ingest_path(con, home, data, mapping=spec)
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (3, 2, 1)
    got = rows(con, "SELECT family, params, tokens, tags->>'notes' FROM runs ORDER BY params")
    assert got[0][0] == "c4-web" and got[0][1] == 70e6 and got[0][2] == pytest.approx(1e9) and got[0][3] == "second"
    assert got[1][1] == pytest.approx(2.8e9) and got[1][2] == pytest.approx(10**10.5)
    (reasons,) = rows(con, "SELECT reasons FROM rejects")[0]
    assert "params (column 'num_params') = 11% cannot be read as suffix" in reasons[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('family = "f"\n[columns]\nparams = "num_params"\ntokens = "t"\nloss = "l"\n[transforms]\nparams = "furlongs"', "line 7: unknown transform 'furlongs'"),
        ('family = "f"\n[columns]\nparameters = "p"', "line 3: 'parameters' is not a canonical column"),
        ('family = "f"\ncolour = "blue"', "line 2: unknown key 'colour'"),
        ('family = "f"\n[columns]\nparams = "no_such_column"\ntokens = "t"\nloss = "l"', "line 3 names column(s) not in the file: params = 'no_such_column'"),
    ],
)
def test_a_mapping_mistake_fails_the_file_naming_the_mapping_line(con, home, tmp_path, text, expected):
    data = write_csv(tmp_path / "d.csv", "num_params,t,l\n1e8,2e9,3.1")
    report = ingest_path(con, home, data, mapping=mapping(tmp_path, text))
    assert report.status == "failed"
    assert "map.toml" in report.error and expected in report.error, report.error


COLUMNS = '[columns]\nparams = "num_params"\ntokens = "t"\nloss = "l"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('family = "f"\ncolumns = "oops"', "line 2: columns must be a table"),
        (f'family = "f"\ndelimiter = 5\n{COLUMNS}', "line 2: delimiter must be one character in quotes"),
        (f'family = "f"\ndelimiter = ";;"\n{COLUMNS}', "line 2: delimiter must be one character in quotes"),
        (f'family = "f"\nheader = "false"\n{COLUMNS}', "line 2: header must be true or false, without quotes; got 'false'"),
        (f'{COLUMNS}\nfamily = "fam"', "line 5: the family is not read from [columns]: write family_column"),
        ('family = "f"\n[columns]\nparams = "num_params"\ntokens = "num_params"\nloss = "l"',
         "line 4: params and tokens both read column 'num_params'"),
        (f'family = "f"\n{COLUMNS}\nrun_name = "num_params"\n[transforms]\nrun_name = "suffix"', "line 8: run_name takes no transform"),
        (f'family = "f"\n{COLUMNS}\n[transforms]\nflops = "log10"', "line 7: a transform for flops, but [columns] does not map flops"),
        (f'family = "f"\nkind = "published"\n{COLUMNS}', "line 2: unknown key 'kind'"),
        (f'family = "f"\nfit_loss = "train"\n{COLUMNS}', "line 2: unknown key 'fit_loss'"),
        (f'family = "f"\nfamily_column = "c"\n{COLUMNS}', "line 2: give either family or family_column, not both"),
        (f'family = "f"\n{COLUMNS}\n[family_values]\n"C4 web" = "c4-web"', "line 6: family_values translate the values of family_column"),
        ('family = "f"\n[columns]\nparams = 1\ntokens = "t"\nloss = "l"', "line 3: params must be text in quotes; got 1"),
        (f'family = "f"\n\n[colour]\nred = 1\n{COLUMNS}', "line 3: unknown key 'colour'"),
    ],
)
def test_every_kind_of_mapping_mistake_names_its_line(con, home, tmp_path, text, expected):
    data = write_csv(tmp_path / "d.csv", "num_params,t,l,c\n1e8,2e9,3.1,x")
    report = ingest_path(con, home, data, mapping=mapping(tmp_path, text))
    assert report.status == "failed" and report.error.startswith("mapping map.toml, "), report.error
    assert expected in report.error and "bug in scalereg" not in report.error, report.error
    assert rows(con, "SELECT count(*) FROM runs") == [(0,)]


def test_a_delimiter_and_a_false_header_are_honoured(con, home, tmp_path):
    data = write_csv(tmp_path / "semi.csv", "7e8;1.4e10;2.7\n1.4e9;2.8e10;2.5")
    spec = mapping(tmp_path, 'family = "semi"\nheader = false\ndelimiter = ";"\n[columns]\nparams = "0"\ntokens = "1"\nloss = "2"')
    report = ingest_path(con, home, data, mapping=spec)
    assert (report.status, report.rows_read, report.rows_accepted) == ("ingested", 2, 2), report.error
    assert rows(con, "SELECT params, tokens, loss FROM runs ORDER BY params") == [(7e8, 1.4e10, 2.7), (1.4e9, 2.8e10, 2.5)]


def test_the_shipped_mappings_are_valid(published):
    from registry.adapters.mapping import load_mapping
    from registry.published import PUBLISHED

    files = [file.mapping for source in PUBLISHED for file in source.files if file.mapping]
    loaded = [load_mapping(published / name) for name in files]
    assert len(loaded) == 4 and all(m.columns and m.citation for m in loaded)
