"""The notebooks' tables: what the source holds is shown as text, never as markup, and a long
value is cut, not dumped."""

from __future__ import annotations

from runbook.record import show
from runbook.record.table import MAX_WIDTH, Table


def test_a_value_from_the_source_is_escaped_in_html() -> None:
    table = Table([("<script>alert(1)</script>", "a & b")], ["name", "note"])
    html = table._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &amp; b" in html


def test_text_aligns_numbers_right_and_cuts_long_values() -> None:
    table = Table([{"table": "orders", "rows": 5, "note": "x" * 200}, {"table": "t", "rows": 12}],
                  ["table", "rows", "note"])  # fmt: skip
    header, first, second = repr(table).splitlines()
    assert header.split() == ["table", "rows", "note"]
    assert first.index("5") == second.index("12") + 1  # right-aligned under each other
    assert first.endswith("x" * (MAX_WIDTH - 1) + "…")
    assert second.split() == ["t", "12"]  # a missing value shows as nothing


def test_a_long_table_is_summarized_with_the_count_of_all(capsys) -> None:
    table = Table([(i,) for i in range(30)], ["n"])
    shown = show.summarize(table, limit=5)
    assert shown["n"] == [0, 1, 2, 3, 4]
    assert "30 rows in all; the first 5 are shown." in capsys.readouterr().out


def test_verify_table_matches_only_equal_counts_and_checksums() -> None:
    result = {
        "tables": [
            {"table": "a", "source_rows": 2, "target_rows": 2, "source_checksum": "1",
             "target_checksum": "1"},
            {"table": "b", "source_rows": 2, "target_rows": 2, "source_checksum": "1",
             "target_checksum": "2"},
            {"table": "c", "source_rows": 3, "compared_rows": 2, "rejected_rows": 1,
             "target_rows": 2, "source_checksum": "1", "target_checksum": "1"},
        ]
    }  # fmt: skip
    table = show.verify_tables(result)
    assert table["match"] == [True, False, True]
    assert table["rejected"] == [0, 0, 1]
