"""DuckDB's copy of a SQLite file into the PostgreSQL schema already there (a peer of the bench,
run as its own process so its time and memory are measured alone): sqlite_scanner with
sqlite_all_varchar (without it DuckDB stops on the first TIME column) and postgres_scanner, one
`INSERT INTO … SELECT` per table. Arguments: SQLite path, libpq URL, JSON {table: [columns]}."""

from __future__ import annotations

import json
import sys

import duckdb
from duckdb_extensions import import_extension


def main(sqlite_path: str, url: str, tables: dict[str, list[str]]) -> None:
    con = duckdb.connect()
    for extension in ("sqlite_scanner", "postgres_scanner"):
        import_extension(extension, con=con)
        con.execute(f"LOAD {extension}")
    con.execute("SET sqlite_all_varchar = true")
    con.execute(f"ATTACH '{sqlite_path}' AS src (TYPE sqlite, READ_ONLY)")
    con.execute(f"ATTACH '{url}' AS dst (TYPE postgres)")
    for table, columns in tables.items():
        names = ", ".join(f'"{c}"' for c in columns)
        con.execute(f'INSERT INTO dst.public."{table}" ({names}) SELECT {names} FROM src."{table}"')
    con.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
