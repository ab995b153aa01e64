"""Java .properties reading and writing, as java.util.Properties does it."""

from __future__ import annotations

import pytest

from mmplan.mm2.properties import line, parse


def test_separators_comments_and_blank_lines():
    p = parse("# comment\n! also\n\na=1\nb : 2\nc 3\n  d=  4  \ne\n")
    assert p.values == {"a": "1", "b": "2", "c": "3", "d": "4  ", "e": ""}
    assert p.lines == {"a": 4, "b": 5, "c": 6, "d": 7, "e": 8}
    assert [text for _, text in p.comments] == [" comment", " also"]


def test_continuation_lines_drop_leading_whitespace():
    p = parse("jaas = org.Module required \\\n    username=\"u\" \\\n    password=\"p\";\nnext=1\n")
    assert p.values["jaas"] == 'org.Module required username="u" password="p";'
    assert p.values["next"] == "1"


def test_even_backslashes_do_not_continue():
    assert parse("a = x\\\\\nb = y\n").values == {"a": "x\\", "b": "y"}


def test_escapes_and_unicode():
    p = parse("k\\ ey\\=x = \\t\\u0041\\n\\ud83c\\udf89\n")
    assert p.values == {"k ey=x": "\tA\n🎉"}


def test_java_drops_unknown_escapes_and_says_so():
    p = parse("topics.exclude = .*\\.internal, a\\\\.b\n")
    assert p.values["topics.exclude"] == ".*.internal, a\\.b"
    assert p.dropped_backslashes == {"topics.exclude": ["."]}


def test_a_repeated_key_keeps_the_last_value():
    assert parse("a=1\nb=2\na=3\n").values == {"b": "2", "a": "3"}


def test_windows_and_old_mac_line_ends():
    assert parse("a=1\r\nb=2\rc=3").values == {"a": "1", "b": "2", "c": "3"}


@pytest.mark.parametrize(("key", "value"), [
    ("us-east->us-west.topics.exclude", r".*\.internal, __.*"),
    ("a b:c=d#e!f", "  leading spaces, = and : and # stay"),
    ("tabs", "\t\n\r\f"),
    ("unicode", "é ü 🎉"),
    ("empty", ""),
    ("trailing", "ends with a backslash \\"),
])
def test_written_lines_read_back(key, value):
    assert parse(line(key, value)).values == {key: value}
