"""Explicit column rules: off by default (the value is a misfit), and when switched on they
convert exactly what they say, through COPY on a real server, and compare equal in verify."""

from __future__ import annotations

from datetime import datetime

import pytest
from test_conversions import roundtrip

from runbook.columns.conversions import conversion_for
from runbook.columns.rules import apply_rules
from runbook.core.errors import RunbookError
from runbook.core.target import Target

TS = "timestamp without time zone"


def test_epoch_seconds_and_milliseconds_become_seoul_local_time(fresh_target: Target) -> None:
    back = roundtrip(fresh_target, TS, "DATETIME", [1627303906], ("epoch-seconds",))
    assert back[0] == datetime(2021, 7, 26, 21, 51, 46)  # 12:51:46 UTC is 21:51:46 in Seoul
    back = roundtrip(fresh_target, TS, "DATETIME", [1627303906122], ("epoch-milliseconds",))
    assert back[0] == datetime(2021, 7, 26, 21, 51, 46, 122000)


def test_offsets_are_converted_to_the_same_instant_in_local_time(fresh_target: Target) -> None:
    values = ["2026-03-02T06:00:00+00:00", "2026-03-02 15:00:00+09:00", "2026-03-02T06:00:00Z"]
    back = roundtrip(fresh_target, TS, "DATETIME", values, ("datetime-offset",))
    assert set(back.values()) == {datetime(2026, 3, 2, 15, 0)}


def test_plain_values_pass_through_a_column_with_rules(fresh_target: Target) -> None:
    back = roundtrip(
        fresh_target, TS, "DATETIME", ["2026-03-02 06:00:00.000001", None], ("epoch-seconds",)
    )
    assert back == {0: datetime(2026, 3, 2, 6, 0, 0, 1), 1: None}


def test_empty_as_null(fresh_target: Target) -> None:
    back = roundtrip(fresh_target, TS, "DATETIME", ["", "2026-01-01 00:00:00"], ("empty-as-null",))
    assert back == {0: None, 1: datetime(2026, 1, 1)}


def test_cp949_text_is_decoded_and_utf8_text_left_alone(fresh_target: Target) -> None:
    values = ["(주)한빛냉장".encode("cp949"), "서울특별시 강남구", "plain"]
    back = roundtrip(fresh_target, "character varying(20)", "VARCHAR(20)", values, ("cp949",))
    assert back == {0: "(주)한빛냉장", 1: "서울특별시 강남구", 2: "plain"}


def test_rules_are_refused_where_they_do_not_apply() -> None:
    with pytest.raises(RunbookError, match="does not apply"):
        conversion_for("boolean", ("epoch-seconds",))
    with pytest.raises(RunbookError, match="unknown column rule"):
        conversion_for(TS, ("guess-the-format",))


def test_without_a_rule_nothing_is_rewritten() -> None:
    assert apply_rules(1627303906, frozenset()) == 1627303906
    assert apply_rules("", frozenset()) == ""
    assert apply_rules("2026-03-02T06:00:00Z", frozenset({"epoch-seconds"})) == (
        "2026-03-02T06:00:00Z"
    )


def test_a_date_alone_in_a_datetime_column_becomes_midnight_only_with_the_rule(
    fresh_target: Target,
) -> None:
    values = ["2016-07-04", "2016-07-05 10:30:00", None]
    back = roundtrip(fresh_target, TS, "DATETIME", values, ("date-as-midnight",))
    assert back == {0: datetime(2016, 7, 4), 1: datetime(2016, 7, 5, 10, 30), 2: None}
    assert apply_rules("2016-07-04", frozenset()) == "2016-07-04"
    assert apply_rules("2016-02-30", frozenset({"date-as-midnight"})) == "2016-02-30"  # no date
    assert apply_rules("20160704", frozenset({"date-as-midnight"})) == "20160704"
