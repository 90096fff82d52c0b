"""Streaming readers for an export of Didomi consent-user objects; the whole file is never in memory.

Three forms, told apart by the first characters (a UTF-8 BOM is skipped):

- JSON Lines: one object per line (blank lines are ignored). A bad line is one reject; the next
  line is read as usual.
- A JSON array ``[{...}, {...}]``: elements are decoded one at a time with the C decoder
  (``json.JSONDecoder.raw_decode``) from a sliding buffer of about 1 MB.
- One API page ``{"data": [...], "pagination": {...}}`` (what ``GET /consents/users`` answers):
  the top-level object is walked key by key; the elements of ``data`` stream like an array, the
  other values are skipped.

Every item carries its record number (1-based position in the input, also the CSV row number) and
the line it starts on. An element that is not valid JSON inside an array is reported and the reader
resumes at the next line that starts an object (an array cannot be resynchronised exactly after a
syntax error; JSON Lines can). ``-`` reads standard input.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from connector.jsontext import reject_constant

CHUNK = 1 << 20
MAX_ELEMENT = 16 << 20  # one user larger than this is refused rather than buffered without bound
_DECODER = json.JSONDecoder(parse_constant=reject_constant)
_SPACE = re.compile(r"[ \t\r\n]*")
_OBJECT_LINE = re.compile(r"\n[ \t\r]*\{")


@dataclass(frozen=True)
class Item:
    """One input record: ``value`` is the decoded JSON, or None with ``error`` saying why."""

    record: int
    line: int
    value: Any = None
    error: str | None = None


class InputError(ValueError):
    """The input as a whole cannot be read (not one of the three forms, unreadable file)."""


def open_input(path: str) -> IO[bytes]:
    """Open *path* for reading bytes; ``-`` is standard input.

    Raises:
        InputError: the file cannot be opened.
    """
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None


def read_users(stream: IO[bytes]) -> Iterator[Item]:
    """Yield every record of *stream* in order, decoded or with the reason it could not be."""
    head = stream.read(4096)
    if head.startswith(codecs.BOM_UTF8):
        head = head[3:]
    first = head.lstrip()[:1]
    if first == b"[":
        yield from _Elements(stream, head).array()
    elif first == b"{" and _is_page(head):
        yield from _Elements(stream, head).page()
    elif first == b"{" or not first:
        yield from _lines(stream, head)
    else:
        raise InputError('input is neither JSON Lines, a JSON array nor an API page {"data": [...]}')


def _is_page(head: bytes) -> bool:
    """True when the first top-level key is ``data`` (or the first line is not a whole object)."""
    first_line = head.split(b"\n", 1)[0]
    try:
        value = json.loads(first_line)
    except ValueError:
        return re.match(rb'\s*\{\s*"(data|pagination|meta|total|limit|skip)"', head) is not None
    return isinstance(value, dict) and isinstance(value.get("data"), list)


def _lines(stream: IO[bytes], head: bytes) -> Iterator[Item]:
    record = 0
    pending = head
    number = 0
    while True:
        chunk = stream.read(CHUNK)
        pending += chunk
        parts = pending.split(b"\n")
        pending = parts.pop() if chunk else b""
        for raw in parts:
            number += 1
            if not raw.strip():
                continue
            record += 1
            yield _decode_line(raw, record, number)
        if not chunk:
            return


def _decode_line(raw: bytes, record: int, line: int) -> Item:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Item(record, line, error=f"not UTF-8 (invalid byte at column {exc.start + 1})")
    try:
        return Item(record, line, _DECODER.decode(text))
    except json.JSONDecodeError as exc:
        return Item(record, line, error=f"invalid JSON at column {exc.colno}: {exc.msg}")
    except (ValueError, RecursionError) as exc:
        return Item(record, line, error=f"invalid JSON: {exc}")


class _Elements:
    """A sliding text window over the stream, for the array and page forms."""

    def __init__(self, stream: IO[bytes], head: bytes) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.buf = self.decoder.decode(head)
        self.pos = 0
        self.line = 1
        self.eof = False
        self.record = 0

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(CHUNK)
        if not chunk:
            self.eof = True
            self.buf += self.decoder.decode(b"", final=True)
            return False
        self.line += self.buf.count("\n", 0, self.pos)
        self.buf = self.buf[self.pos :] + self.decoder.decode(chunk)
        self.pos = 0
        return True

    def _advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def _skip_space(self) -> str:
        """Skip whitespace; return the next character ("" at the end)."""
        while True:
            match = _SPACE.match(self.buf, self.pos)
            assert match is not None
            self._advance(match.end())
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def _value(self) -> tuple[Any, str | None]:
        """Decode one JSON value at the cursor: ``(value, None)`` or ``(None, reason)``."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                truncated = exc.pos >= len(self.buf) - 1 or exc.msg.startswith("Unterminated string")
                if truncated and len(self.buf) - self.pos < MAX_ELEMENT and self._more():
                    continue
                line = self.line + self.buf.count("\n", self.pos, exc.pos)
                return None, f"invalid JSON at line {line}: {exc.msg}"
            except (ValueError, RecursionError) as exc:
                return None, f"invalid JSON: {exc}"
            if end >= len(self.buf) and not self.eof and self._more():
                continue  # a number may continue in the next chunk
            self._advance(end)
            return value, None

    def _resync(self) -> None:
        """After a syntax error: continue at the next line that starts an object."""
        while True:
            match = _OBJECT_LINE.search(self.buf, self.pos)
            if match is not None:
                self._advance(match.end() - 1)
                return
            self._advance(max(self.pos, len(self.buf) - 1))
            if not self._more():
                self._advance(len(self.buf))
                return

    def array(self) -> Iterator[Item]:
        if self._skip_space() != "[":
            raise InputError("a JSON array input must start with [")
        self._advance(self.pos + 1)
        if self._skip_space() == "]":
            self._advance(self.pos + 1)
            return
        while True:
            char = self._skip_space()
            if char == "":
                return
            self.record += 1
            line = self.line
            value, error = self._value()
            yield Item(self.record, line, value, error)
            if error is not None:
                self._resync()
                continue
            char = self._skip_space()
            if char == ",":
                self._advance(self.pos + 1)
            elif char == "]" or char == "":
                self._advance(self.pos + 1)
                return
            else:
                self.record += 1
                yield Item(self.record, self.line, error=f"expected ',' or ']' at line {self.line}")
                self._resync()

    def page(self) -> Iterator[Item]:
        self._skip_space()
        self._advance(self.pos + 1)  # the "{"
        while True:
            char = self._skip_space()
            if char in ("}", ""):
                return
            if char == ",":
                self._advance(self.pos + 1)
                continue
            key, error = self._value()
            if error is not None or not isinstance(key, str) or self._skip_space() != ":":
                raise InputError(f"malformed API page near line {self.line}")
            self._advance(self.pos + 1)
            if self._skip_space() == "[" and key == "data":
                yield from self.array()
            else:
                _, error = self._value()
                if error is not None:
                    raise InputError(f"malformed API page near line {self.line}: {error}")
