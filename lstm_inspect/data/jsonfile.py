"""A JSON object read from a file member by member, and one array member element by element:
a saved run of a million steps is parsed once, each value by json's own decoder (in C), holding
one chunk of text and one value at a time.

Why not a library: ijson (yajl, in C) parses the elements of one array as fast, but gives the
members around it only as events passed through Python, one per token (twice the time for a
million steps); json-stream builds each element in Python (15 times the time); json.load holds
the whole file, six bytes per byte of it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TextIO

CHUNK = 1 << 20  # characters read at a time; a value longer than the text held reads twice as much
_TOKEN = 16  # more than the longest part of a token that parses as something else (a keyword, "1e-")
_SPACE = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]  # the decoder's own whitespace


class NotAnObject(ValueError):
    """The file holds JSON, but not an object."""


class Items:
    """The elements of the streamed array, read as they are asked for; `members` reads past
    those left unread before it goes on."""

    def __init__(self, reader: _Reader) -> None:
        self._reader = reader
        self.done = False  # pragma: no mutate (only its truth is read)

    def __iter__(self) -> Iterator[Any]:
        reader = self._reader
        first = True
        while not self.done:
            mark = reader.next_mark()
            if mark == "]":
                reader.skip(1)
                self.done = True
                return
            if not first:
                reader.expect(",", "',' or ']' between the elements of an array")
            first = False  # pragma: no mutate (only its truth is read)
            yield reader.value()

    def drain(self) -> None:
        for _ in self:
            pass


class _Reader:
    def __init__(self, file: TextIO, decoder: json.JSONDecoder, room: Callable[[int], None], chunk: int) -> None:
        self.file, self.decode, self.room, self.chunk = file, decoder.raw_decode, room, chunk
        self.text, self.at, self.offset, self.ended = "", 0, 0, False  # offset: characters let go before text

    def more(self) -> bool:
        """Read on, keeping the text not yet taken; False at the end of the file."""
        if self.ended:
            return False
        kept = len(self.text) - self.at
        if kept > self.chunk:
            self.room(2 * kept)  # one value longer than a chunk: the caller's memory check first
        chunk = self.file.read(max(self.chunk, kept))
        if not chunk:
            self.ended = True
            return False
        self.offset += self.at
        self.text, self.at = self.text[self.at:] + chunk, 0
        return True

    def next_mark(self) -> str:
        """The next character that is not whitespace, left unread ("" at the end of the file)."""
        while True:
            self.at = _SPACE(self.text, self.at).end()
            if self.at < len(self.text):
                return self.text[self.at]
            if not self.more():
                return ""

    def skip(self, characters: int) -> None:
        self.at += characters

    def expect(self, mark: str, what: str) -> None:
        if self.next_mark() != mark:
            self.fail(f"Expecting {what}")
        self.skip(1)

    def fail(self, message: str) -> None:
        found = "the end of the file" if self.at >= len(self.text) else f"char {self.offset + self.at:,}"
        raise json.JSONDecodeError(f"{message} at {found}", self.text, self.at)

    def value(self) -> Any:
        """The JSON value at the mark, whole: read on while it is cut off by the end of the text,
        or ends near it."""
        self.next_mark()
        while True:
            try:
                value, end = self.decode(self.text, self.at)
            except json.JSONDecodeError as error:
                if _cut_off(error, len(self.text)) and self.more():
                    continue
                raise json.JSONDecodeError(f"{error.msg} at char {self.offset + error.pos:,}", error.doc,
                                           error.pos) from None
            if end > len(self.text) - _TOKEN and self.more():
                continue  # a number at the end may go on ("0." of "0.5", "1e" of "1e-7")
            self.at = end
            return value


def _cut_off(error: json.JSONDecodeError, length: int) -> bool:
    """Whether the value may only be cut off by the end of the text held: a string left open, or
    a failure within the last token (a keyword, a number, an escape); else the text is damaged,
    and reading on would only hold more of it."""
    if error.msg.startswith("Unterminated string"):
        return True
    # (>= reads on one character sooner: a damaged text is refused all the same, with the same words)
    return error.pos > length - _TOKEN  # pragma: no mutate


def members(file: TextIO, streamed: str, *, room: Callable[[int], None],
            parse_constant: Callable[[str], Any] | None = None, chunk: int | None = None) -> Iterator[tuple[str, Any]]:
    """(key, value) for each member of the object `file` holds, in the file's order; where the
    value of `streamed` is an array, it comes as `Items`, read while the caller iterates it.
    json.JSONDecodeError for text that is not JSON (a key given twice included), NotAnObject for
    JSON that is no object,
    RecursionError for one nested past Python's stack; `room(characters)` is called before
    the text held for one value grows past two chunks (of `chunk` characters, CHUNK unless given)."""
    reader = _Reader(file, json.JSONDecoder(parse_constant=parse_constant), room, chunk or CHUNK)
    if reader.next_mark() != "{":
        reader.value()  # JSONDecodeError where the file is not JSON at all
        raise NotAnObject("not a JSON object")
    reader.skip(1)
    seen: set[str] = set()
    if reader.next_mark() == "}":
        reader.skip(1)
    else:
        while True:
            key = reader.value()
            if not isinstance(key, str):
                reader.fail("Expecting a key")
            if key in seen:
                reader.fail(f"Expecting each key once, not {key!r} again")
            seen.add(key)
            reader.expect(":", "':' after a key")
            if key == streamed and reader.next_mark() == "[":
                reader.skip(1)
                items = Items(reader)
                yield key, items
                items.drain()
            else:
                yield key, reader.value()
            if reader.next_mark() == "}":
                reader.skip(1)
                break
            reader.expect(",", "',' or '}' between the members of an object")
    if reader.next_mark():
        reader.fail("Extra data")
