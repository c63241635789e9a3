"""Reading YAML definitions: bounded aliases, merge keys, streaming, marks."""

from __future__ import annotations

import io
import resource
from pathlib import Path

import pytest
import yaml

from entropy import progress, yamlread
from entropy.errors import ConfigError
from entropy.yamlread import ALIAS_BASE, MarkedMap, Streamed, read_yaml, stream

LAUGHS = """\
web-1.example:
  ip_address: 10.0.0.1
  host_type: web
  vars:
    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_billion_laughs_is_refused_at_the_alias_that_crosses_the_bound(tmp_path: Path) -> None:
    """10^9 values from nine lines: refused at load, in kilobytes, not expanded at each run."""
    path = tmp_path / "hosts.yaml"
    path.write_text(LAUGHS)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    line = next(n for n, x in enumerate(LAUGHS.splitlines(), 1) if "e: &e" in x)
    assert (info.value.where.path, info.value.where.line) == (str(path), line)
    assert "aliases expand to more than" in info.value.message
    with pytest.raises(ConfigError):  # the streamed reader counts the same way
        list(stream(path))


def test_aliases_and_merge_keys_of_a_normal_file_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yaml"
    hosts = "".join(
        f"web-{i}.example: {{<<: *defaults, ip_address: 10.0.{i // 256}.{i % 256}}}\n"
        for i in range(ALIAS_BASE // 2)  # more alias uses than the base allows on its own
    )
    path.write_text(
        "defaults: &defaults {host_type: web, groups: [a, b], vars: {rack: r1, zone: z}}\n" + hosts
    )
    doc = read_yaml(path)
    assert len(doc) == ALIAS_BASE // 2 + 1
    assert doc["web-7.example"] == {
        "ip_address": "10.0.0.7", "host_type": "web", "groups": ["a", "b"],
        "vars": {"rack": "r1", "zone": "z"},
    }  # fmt: skip


def test_a_mappings_own_key_wins_over_a_merged_one(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "base: &b {x: 1, y: 2}\nmore: &m {y: 3, z: 4}\n"
        "one: {<<: [*b, *m], x: 9}\n"  # own x wins; y from the first merged mapping
    )
    assert read_yaml(path)["one"] == {"x": 9, "y": 2, "z": 4}
    assert yaml.safe_load(path.read_text())["one"] == {"x": 9, "y": 2, "z": 4}  # as PyYAML


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first at line 1)"),
        ("a:\n  x: 1\n  x: 2\n", 3, "duplicate key 'x' (first at line 2)"),
        ("? [a, b]\n: 1\n", 1, "found an unhashable key"),
        ("a: *nope\n", 1, "found undefined alias 'nope'"),
        ("a: &x [1, *x]\n", 1, "alias *x is inside its own anchor"),
        ("a: &x 1\nb: &x 2\n", 2, "found duplicate anchor 'x'"),
        ("a: [1, 2\n", 2, "invalid YAML"),
        ("a: =\n", 1, "is not supported here"),  # PyYAML has no constructor for it either
    ],
)
def test_problems_are_at_their_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(text)
    for read in (read_yaml, lambda p: list(stream(p))):
        with pytest.raises(ConfigError) as info:
            read(path)
        assert info.value.where.line == line, info.value
        assert message in info.value.message


def test_marks_are_one_based_lines_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("# c\nweb:\n  audits:\n    check: {run_every: 1h}\n")
    doc = read_yaml(path)
    assert isinstance(doc, MarkedMap)
    assert doc.at("web") == (2, 1)
    assert doc["web"].at("audits") == (3, 3)
    assert doc["web"]["audits"].at("check") == (4, 5)
    assert doc["web"]["audits"]["check"].mark == (4, 12)


def test_scalars_read_as_pyyaml_safe_load_reads_them(tmp_path: Path) -> None:
    text = (
        "a: [1, 0x10, 1_000, 1:30, 1.5, .inf, -.nan, true, no, ~, null, '', 'x', \"y\", "
        "2024-01-01, !!str 12, !!int '7']\n"
    )
    path = tmp_path / "a.yaml"
    path.write_text(text)
    ours, theirs = read_yaml(path)["a"], yaml.safe_load(text)["a"]
    assert [repr(x) for x in ours] == [repr(x) for x in theirs]


def test_stream_hands_entries_over_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yaml"
    path.write_text("a: 1\nb: {x: 2}\nc: [3]\n")
    found = stream(path)
    assert isinstance(found, Streamed)
    seen = []
    for key, value, at in found:
        seen.append((key, value, at))
        if key == "a":
            assert path.read_text()  # the rest is not read yet, and needn't be
    assert seen == [("a", 1, (1, 1)), ("b", {"x": 2}, (2, 1)), ("c", [3], (3, 1))]


@pytest.mark.parametrize(("text", "value"), [("", None), ("# c\n", None), ("---\n", None),
                                             ("[1]\n", [1]), ("x\n", "x")])  # fmt: skip
def test_stream_of_a_file_that_is_not_a_mapping(tmp_path: Path, text: str, value: object) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(text)
    assert stream(path) == value
    assert read_yaml(path) == value


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_reading_a_large_file_shows_progress_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlread, "PROGRESS_FROM", 1)  # "large", for the test
    monkeypatch.setattr(progress, "EVERY", 0.0)
    path = tmp_path / "hosts.yaml"
    path.write_text("".join(f"h{i}.example: {{host_type: web}}\n" for i in range(5000)))
    terminal, pipe = _Terminal(), io.StringIO()
    for out in (terminal, pipe):
        with yamlread.progress_on_terminal(out):
            assert sum(1 for _ in stream(path)) == 5000
    lines = terminal.getvalue().split("\r")
    assert any(line.startswith("reading hosts.yaml: ") and "entries)" in line for line in lines)
    assert lines[-1] == "read hosts.yaml: 5,000 entries" + " " * 12 + "\n"
    assert pipe.getvalue() == ""
    assert progress.progress_to is None  # back to silent (the engine's default)


@pytest.mark.parametrize("text", ["a: !!bool yes9\n", "a: !!timestamp 2001-1x\n", "a: !!float\n"])
def test_a_value_its_tag_cannot_read_is_a_problem(tmp_path: Path, text: str) -> None:
    """PyYAML's constructors crash on these (KeyError, AttributeError, IndexError)."""
    path = tmp_path / "a.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert info.value.where.line == 1
    assert "cannot read" in info.value.message
