"""Read YAML definitions into plain values that remember where each key stood.

Built from libyaml's events (the C parser), not from its node tree: a node
costs some 400 bytes until the whole document is built, which made a 50 MB
hosts.yaml take 4 GB. Values are made as the events come, and `stream()`
hands a file's top-level entries over one at a time, so a reader of
hosts.yaml holds one host's values at a time, never the whole document.

Bounded on purpose, each bound a clear error at the place it is crossed:
- aliases may expand to at most ALIAS_BASE + ALIAS_RATIO x the document's own
  nodes ("billion laughs": nine lines that expand to 10^9 values);
- nesting at most MAX_DEPTH levels (deeper crashed Python's recursion);
- one document per file.
YAML 1.1 as PyYAML's safe loader reads it (the same scalar types), with merge
keys (`<<: *defaults`; a key of the mapping itself wins over a merged one)
and without the rarely used !!set, !!omap and !!pairs collections.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from . import progress
from .errors import ConfigError, Location
from .regularfile import NotRegularFile, describe_os_error, open_regular

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ALIAS_BASE = 100_000  # values aliases may add to any document
ALIAS_RATIO = 10  # ... plus this many per value the document spells out itself
MAX_DEPTH = 64  # levels of nested mappings and lists

_MAP_TAGS = frozenset({None, "!", "tag:yaml.org,2002:map"})
_SEQ_TAGS = frozenset({None, "!", "tag:yaml.org,2002:seq"})
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


class MarkedMap(dict):
    """A YAML mapping that remembers where it and each of its keys stood."""

    __slots__ = ("key_marks", "mark")
    key_marks: dict[Any, tuple[int, int]]  # key -> (line, column); set by new_map
    mark: tuple[int, int]  # where the mapping itself starts

    def at(self, key: Any, missing: tuple[int, int] | None = None) -> tuple[int, int]:
        """Where key stands; for an absent key, `missing` (say, the entry's name) if given."""
        return self.key_marks.get(key, missing or self.mark)


def new_map(mark: tuple[int, int]) -> MarkedMap:
    result = MarkedMap()
    result.mark, result.key_marks = mark, {}
    return result


class _Merge:
    """The `<<` key: its value's mappings are merged into the mapping holding it."""

    __slots__ = ()


MERGE = _Merge()


def _problem(problem: str, mark: Any, context: str | None = None) -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(context, None, problem, mark)


class _Frame:
    """A mapping or list being built."""

    __slots__ = ("anchor", "key", "key_mark", "mark", "merges", "size", "value")

    def __init__(self, value: Any, anchor: str | None, mark: Any) -> None:
        self.value = value
        self.anchor = anchor
        self.mark = mark
        self.size = 1  # values in it once aliases are expanded, itself included
        self.key: Any = _NO_KEY
        self.key_mark: Any = None
        self.merges: list[MarkedMap] | None = None


_NO_KEY = object()


# _Loader is chosen at run time (the C parser where libyaml is there): mypy can't follow it.
class _Builder(_Loader):  # type: ignore[misc, valid-type]
    """Values from the parser's events; see the module's docstring."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(stream)
        self._anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, expanded size)
        self._open: set[str] = set()  # anchors of collections still being built
        self.own = 0  # values spelled out in the document
        self.expanded = 0  # values added by aliases
        self._constructors = self.yaml_constructors

    # -- the document around the values -------------------------------------------

    def start(self) -> bool:
        """Read up to the first document's root; False if the stream has no document."""
        self.get_event()  # StreamStart
        if isinstance(self.peek_event(), yaml.StreamEndEvent):
            return False
        self.get_event()  # DocumentStart
        return True

    def finish(self) -> None:
        """The end of the document, and no second one."""
        self.get_event()  # DocumentEnd
        event = self.get_event()
        if not isinstance(event, yaml.StreamEndEvent):
            raise _problem(
                "found a second document in the file (a '---' line); keep one per file",
                event.start_mark,
            )

    # -- values ---------------------------------------------------------------------

    def value(self, is_key: bool = False) -> Any:
        """The next complete value (a scalar, or a mapping or list with all inside it)."""
        return self._value(is_key)[0]

    def _value(self, is_key: bool = False) -> tuple[Any, int]:
        stack: list[_Frame] = []
        get_event = self.get_event
        first_chars = self.yaml_implicit_resolvers
        while True:
            event = get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                self.own += 1
                size = 1
                text = event.value
                if (
                    event.tag is None
                    and event.implicit[0]
                    and text
                    and text[0] not in first_chars
                    and event.anchor is None
                ):
                    result = text  # plain text no resolver claims: most keys and names
                else:
                    if stack:
                        top = stack[-1]
                        in_key = top.key is _NO_KEY and type(top.value) is not list
                    else:
                        in_key = is_key
                    result = self._scalar(event, in_key)
                    if event.anchor is not None:
                        self._anchor(event, result, 1)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                stack.append(self._open_collection(event, kind, len(stack)))
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                result, size = self._close(frame), frame.size
            elif kind is yaml.AliasEvent:
                result, size = self._alias(event)
            else:  # the parser checks the structure; this is only a safety net
                raise _problem(f"unexpected {kind.__name__}", event.start_mark)
            if not stack:
                return result, size
            parent = stack[-1]
            parent.size += size
            if type(parent.value) is list:
                parent.value.append(result)
            elif parent.key is _NO_KEY:
                parent.key, parent.key_mark = result, event.start_mark
            else:
                self._put(parent, result)

    def _open_collection(self, event: Any, kind: type, depth: int) -> _Frame:
        if depth >= MAX_DEPTH:
            raise _problem(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self.own += 1
        mark = event.start_mark
        if kind is yaml.MappingStartEvent:
            if event.tag not in _MAP_TAGS:
                raise _problem(f"the tag {event.tag!r} is not supported here", mark)
            value: Any = new_map((mark.line + 1, mark.column + 1))
        else:
            if event.tag not in _SEQ_TAGS:
                raise _problem(f"the tag {event.tag!r} is not supported here", mark)
            value = []
        if event.anchor is not None:
            self._check_anchor(event)
            self._open.add(event.anchor)
        return _Frame(value, event.anchor, mark)

    def _close(self, frame: _Frame) -> Any:
        value = frame.value
        if frame.merges:
            for source in frame.merges:  # the first one named wins, and own keys beat all
                for key, item in source.items():
                    if key not in value:
                        value[key] = item
                        value.key_marks[key] = source.key_marks.get(key, source.mark)
        if frame.anchor is not None:
            self._open.discard(frame.anchor)
            self._anchors[frame.anchor] = (value, frame.size)
        return value

    def _put(self, frame: _Frame, value: Any) -> None:
        key, mark = frame.key, frame.key_mark
        frame.key = _NO_KEY
        mapping = frame.value
        if key is MERGE:
            sources = value if type(value) is list else [value]
            if not all(isinstance(source, MarkedMap) for source in sources):
                raise _problem("a merge key (<<) takes a mapping or a list of mappings", mark)
            frame.merges = (frame.merges or []) + sources
            return
        try:
            duplicate = key in mapping
        except TypeError:
            raise _problem("found an unhashable key", mark, "while reading a mapping") from None
        if duplicate:
            first = mapping.key_marks[key]
            raise _problem(f"duplicate key {key!r} (first at line {first[0]})", mark)
        mapping[key] = value
        mapping.key_marks[key] = (mark.line + 1, mark.column + 1)

    def _scalar(self, event: Any, is_key: bool) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR:
            return event.value
        if tag == _MERGE:
            return MERGE if is_key else event.value
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        construct = self._constructors.get(tag)
        if construct is None or tag in ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"):
            raise _problem(f"the tag {tag!r} is not supported here", event.start_mark)
        try:
            return construct(self, node)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # an int of 4300+ digits; PyYAML's own crash on `!!bool x`
            raise _problem(
                f"cannot read {event.value[:40]!r} as {tag.rpartition(':')[2]}: "
                f"{str(exc)[:100] or type(exc).__name__}",
                event.start_mark,
            ) from None

    def _alias(self, event: Any) -> tuple[Any, int]:
        name = event.anchor
        if name in self._open:
            raise _problem(f"alias *{name} is inside its own anchor", event.start_mark)
        try:
            value, size = self._anchors[name]
        except KeyError:
            raise _problem(f"found undefined alias {name!r}", event.start_mark) from None
        self.expanded += size
        budget = ALIAS_BASE + ALIAS_RATIO * self.own
        if self.expanded > budget:
            raise _problem(
                f"aliases expand to more than {budget:,} values (alias *{name} adds "
                f"{size:,}); write the values out, or use fewer nested aliases",
                event.start_mark,
            )
        return value, size

    def _anchor(self, event: Any, value: Any, size: int) -> None:
        self._check_anchor(event)
        self._anchors[event.anchor] = (value, size)

    def _check_anchor(self, event: Any) -> None:
        if event.anchor in self._anchors or event.anchor in self._open:
            raise _problem(f"found duplicate anchor {event.anchor!r}", event.start_mark)


# -- reading files -------------------------------------------------------------------


def _config_error(path: Path, exc: BaseException) -> ConfigError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = Location(str(path), mark.line + 1, mark.column + 1) if mark else Location(str(path))
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return ConfigError(where, f"invalid YAML: {message}")
    if isinstance(exc, OSError):
        if isinstance(exc, FileNotFoundError):
            return ConfigError(Location(str(path)), "file not found")
        if isinstance(exc, NotRegularFile) or exc.errno == errno.ELOOP:
            return ConfigError(Location(str(path)), describe_os_error(exc))
        return ConfigError(Location(str(path)), f"cannot read: {exc.strerror or exc}")
    return ConfigError(Location(str(path)), f"invalid YAML: {exc}")


_ERRORS = (yaml.YAMLError, OSError, ValueError)


def read_yaml(path: Path) -> Any:
    """Parse one YAML file; a problem becomes a ConfigError at its line. None if empty."""
    try:
        with open_regular(path) as stream:
            builder = _Builder(stream)
            if not builder.start():
                return None
            value = builder.value()
            builder.finish()
            return value
    except _ERRORS as exc:
        raise _config_error(path, exc) from None


def loads(text: str) -> Any:
    """One YAML value from text (a command-line option), bounded as files are.

    Raises yaml.YAMLError or ValueError when it can't be read.
    """
    builder = _Builder(text.encode())  # type: ignore[arg-type]  # bytes are read like a stream
    if not builder.start():
        return None
    value = builder.value()
    builder.finish()
    return value


class Streamed:
    """A file whose top level is a mapping, read one entry at a time.

    `stream(path)` returns one of these when the file holds a mapping, and
    the file's whole value otherwise (None when empty). Iterating yields
    (key, value, (line, col)) and raises ConfigError at a problem further in.
    """

    def __init__(self, path: Path, stream: IO[bytes], builder: _Builder, mark: Any) -> None:
        self.path = path
        self.mark = (mark.line + 1, mark.column + 1)
        self._stream = stream
        self._builder = builder

    def __iter__(self) -> Iterator[tuple[Any, Any, tuple[int, int]]]:
        builder, stream = self._builder, self._stream
        progress = _Progress.start(self.path, stream)
        seen: dict[Any, int] = {}  # key -> its line, for duplicates
        merges: list[tuple[MarkedMap, tuple[int, int]]] = []
        try:
            with stream:
                while not isinstance(builder.peek_event(), yaml.MappingEndEvent):
                    key_mark = builder.peek_event().start_mark
                    key = builder.value(is_key=True)
                    value = builder.value()
                    at = (key_mark.line + 1, key_mark.column + 1)
                    if key is MERGE:
                        for source in value if isinstance(value, list) else [value]:
                            if not isinstance(source, MarkedMap):
                                raise _problem(
                                    "a merge key (<<) takes a mapping or a list of mappings",
                                    key_mark,
                                )
                            merges.append((source, at))
                        continue
                    try:
                        first = seen.get(key)
                    except TypeError:
                        raise _problem(
                            "found an unhashable key", key_mark, "while reading a mapping"
                        ) from None
                    if first is not None:
                        raise _problem(f"duplicate key {key!r} (first at line {first})", key_mark)
                    seen[key] = at[0]
                    if progress:
                        progress.tick()
                    yield key, value, at
                builder.get_event()  # MappingEnd
                builder.finish()
                for source, _at in merges:
                    for key, value in source.items():
                        if key not in seen:
                            seen[key] = 0
                            yield key, value, source.key_marks.get(key, source.mark)
        except _ERRORS as exc:
            raise _config_error(self.path, exc) from None
        finally:
            if progress:
                progress.done()


def stream(path: Path) -> Streamed | Any:
    """A Streamed for a file holding a mapping; else the file's value (None if empty).

    Raises ConfigError when the file can't be opened or its start can't be read.
    """
    try:
        handle = open_regular(path)  # closed by Streamed, or below
    except OSError as exc:
        raise _config_error(path, exc) from None
    try:
        builder = _Builder(handle)
        if not builder.start():
            handle.close()
            return None
        event = builder.peek_event()
        if isinstance(event, yaml.MappingStartEvent) and event.tag in _MAP_TAGS:
            builder.get_event()
            builder.own += 1
            if event.anchor is not None:
                raise _problem("an anchor on the whole file is not supported", event.start_mark)
            return Streamed(path, handle, builder, event.start_mark)
        value = builder.value()
        builder.finish()
        handle.close()
        return value
    except _ERRORS as exc:
        handle.close()
        raise _config_error(path, exc) from None


# -- progress on a terminal ------------------------------------------------------------

PROGRESS_FROM = 8 * 1024 * 1024  # bytes: smaller files are read before anyone waits


class _Progress(progress.Bar):
    """`reading hosts.yaml: 41% (240,000 entries)` on one line, redrawn about once a second."""

    def __init__(self, path: Path, stream: IO[bytes], size: int, out: IO[str]) -> None:
        super().__init__(f"reading {path.name}", None, out)
        self.path, self.stream, self.size = path, stream, size

    @classmethod
    # Bar.start's other arguments: this bar is made from the file it reads (size, position).
    def start(cls, path: Path, stream: IO[bytes]) -> _Progress | None:  # type: ignore[override]
        out = progress.progress_to
        if out is None:
            return None
        try:
            size = os.fstat(stream.fileno()).st_size
        except (OSError, ValueError):
            return None
        return cls(path, stream, size, out) if size >= PROGRESS_FROM else None

    def tick(self) -> None:
        self.count += 1
        if self.count & 1023 or time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + progress.EVERY
        try:
            done = min(self.stream.tell() / self.size, 1.0)
        except (OSError, ValueError):
            return
        self.draw(f"reading {self.path.name}: {done:4.0%} ({self.count:,} entries)")

    def done(self, text: str | None = None) -> None:
        super().done(f"read {self.path.name}: {self.count:,} entries")


progress_on_terminal = progress.progress_on_terminal  # where `entropy validate` found it
