"""The filter language's tokens, and the error every malformed filter raises (see ``filters``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


class FilterError(ValueError):
    """A malformed filter or order-by clause; ``position`` is a 0-based offset."""

    def __init__(self, message: str, position: int, clause: int | None = None) -> None:
        self.message = message
        self.position = position
        self.clause = clause
        super().__init__(message, position, clause)

    def __str__(self) -> str:
        where = "filter" if self.clause is None else f"order_by clause {self.clause}"
        return f"invalid {where} at position {self.position}: {self.message}"


TokenKind = Literal["word", "number", "string", "qname", "op", "(", ")", ",", "end"]

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z0-9_\-/.:]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_OPERATORS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">")
_ESCAPABLE = ("'", '"', "\\")
_PUNCTUATION: dict[str, TokenKind] = {"(": "(", ")": ")", ",": ","}


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str  # the source text of the token
    value: str  # decoded contents for quoted tokens, else the text
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    if "\x00" in text:  # no stored name or value holds NUL, and PostgreSQL refuses it in a query
        raise FilterError("the filter contains a NUL character", text.index("\x00"))
    tokens: list[Token] = []
    pos = 0
    while True:
        space = _SPACE.match(text, pos)
        if space:
            pos = space.end()
        if pos >= len(text):
            tokens.append(Token("end", "", "", pos, pos))
            return tokens
        token = _next_token(text, pos)
        tokens.append(token)
        pos = token.end


def _next_token(text: str, pos: int) -> Token:
    char = text[pos]
    if char in _PUNCTUATION:
        return Token(_PUNCTUATION[char], char, char, pos, pos + 1)
    if char in "'\"`":
        return _scan_quoted(text, pos)
    for op in _OPERATORS:
        if text.startswith(op, pos):
            return Token("op", op, op, pos, pos + len(op))
    number = _NUMBER.match(text, pos)
    if number and not _WORD.match(text, number.end()):
        return Token("number", number.group(), number.group(), pos, number.end())
    word = _WORD.match(text, pos)
    if word is None:
        raise FilterError(f"unexpected character {char!r}", pos)
    return Token("word", word.group(), word.group(), pos, word.end())


def _scan_quoted(text: str, start: int) -> Token:
    quote = text[start]
    parts: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == quote and text.startswith(quote, pos + 1):
            parts.append(quote)
            pos += 2
        elif char == quote:
            kind: TokenKind = "qname" if quote == "`" else "string"
            return Token(kind, text[start : pos + 1], "".join(parts), start, pos + 1)
        elif char == "\\" and quote != "`" and text[pos + 1 : pos + 2] in _ESCAPABLE:
            parts.append(text[pos + 1])
            pos += 2
        else:
            parts.append(char)
            pos += 1
    what = "quoted name" if quote == "`" else "string"
    raise FilterError(f"unterminated {what} (missing closing {quote})", start)


def describe_token(token: Token) -> str:
    if token.kind == "end":
        return "end of input"
    text = token.text if len(token.text) <= 40 else token.text[:37] + "..."
    return repr(text)
