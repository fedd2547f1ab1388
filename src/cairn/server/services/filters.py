"""Parser for the run-search filter language and for order-by clauses.

The parser produces a small typed AST (:class:`Comparison`, :class:`BoolOp`,
:class:`OrderBy`); it never builds SQL. Grammar (keywords are case-insensitive)::

    filter     := or_expr                      -- empty or blank text means "no filter"
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := primary ("and" primary)*     -- "and" binds tighter than "or"
    primary    := "(" or_expr ")" | comparison
    comparison := entity op value
                | entity ("in" | "not" "in") "(" value ("," value)* ")"
                | entity "is" ["not"] "null"   -- metrics, params and tags only
    op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | "like" | "ilike"
    value      := number | 'single quoted' | "double quoted"
    entity     := kind "." name | kind "." quoted-name ["." suffix] | attribute-name
    kind       := metrics | metric | params | param | tags | tag | attributes | attribute
                | attr | run | datasets | dataset
    order_by   := entity ["asc" | "desc"]

Unquoted names use ``A-Z a-z 0-9 _ - / . :``; names quoted with backticks or double
quotes may contain anything (double the quote character to include it). For metrics,
a trailing ``.last``/``.min``/``.max``/``.mean``/``.best``/``.count`` selects the
summary (default ``last``). Strings accept the escapes ``\\'``, ``\\"`` and ``\\\\``
as well as doubled quotes; any other backslash is kept as is (so LIKE escapes
survive). Integers must fit in 64 bits and floats must be finite.

Every malformed input raises :class:`FilterError` carrying a message and the
0-based character offset where the problem starts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from cairn.server.services.errors import InvalidInputError
from cairn.server.services.filter_tokens import (
    FilterError as FilterError,  # re-exported: callers catch it here
    Token,
    describe_token,
    tokenize,
)

MAX_FILTER_LENGTH = 4000
MAX_COMPARISONS = 100
MAX_DEPTH = 20
MAX_ORDER_BY = 10
MAX_PATTERN = 500  # characters of one LIKE / ILIKE pattern; patterns are matched by the database, never a regex

EntityKind = Literal["metric", "param", "tag", "attribute", "dataset"]
Scalar: TypeAlias = float | int | str
Value: TypeAlias = Scalar | tuple[Scalar, ...] | None


@dataclass(frozen=True)
class Entity:
    """A column to compare or sort on; ``agg`` is set for metrics only."""

    kind: EntityKind
    key: str
    agg: str | None = None


@dataclass(frozen=True)
class Comparison:
    """``op`` is normalized (``==`` -> ``=``, ``<>`` -> ``!=``, keywords upper-case); ``value`` is
    a tuple for IN / NOT IN, ``None`` for IS [NOT] NULL; ``position`` is where the comparison starts."""

    entity: Entity
    op: str
    value: Value
    position: int


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    items: tuple[Node, ...]


Node: TypeAlias = Comparison | BoolOp


@dataclass(frozen=True)
class OrderBy:
    entity: Entity
    ascending: bool


# --------------------------------------------------------------------------- vocabulary

_ENTITY_KINDS: tuple[EntityKind, ...] = ("metric", "param", "tag", "attribute", "dataset")
_KINDS: dict[str, EntityKind] = {name: kind for kind in _ENTITY_KINDS for name in (kind, kind + "s")}
_KINDS.update(attr="attribute", run="attribute", conventions="attribute")
_ATTRIBUTE_ALIASES = {"id": "run_id", "name": "run_name", "created": "start_time", "user_id": "user"}
_DATASET_ALIASES = {"context": "role"}
_DATASET_FIELDS = ("name", "digest", "role", "uri", "version")
_AGGS = ("last", "min", "max", "mean", "best", "count")
_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "like", "ilike"})

_SYMBOL_OPS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ALL_OPS = ("=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL")
_NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_EQUALITY_OPS = frozenset({"=", "!=", "IN", "NOT IN"})
_STRING_OPS = _EQUALITY_OPS | {"LIKE", "ILIKE"}
_NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})
_LIST_OPS = frozenset({"IN", "NOT IN"})

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DIGITS = re.compile(r"[0-9]{1,19}")

# ------------------------------------------------------------------------------ entities


def _check_dotted(name: str, pos: int) -> None:
    if "" in name.split("."):
        raise FilterError(f"invalid name {name!r}: empty segment between dots", pos)


def _make_entity(kind: EntityKind, name: str, pos: int, *, quoted: bool, suffix: tuple[str, int] | None,
                 vocabulary: Vocabulary) -> Entity:
    if not name:
        raise FilterError("empty name", pos)
    if not quoted:
        _check_dotted(name, pos)
    if kind == "metric":
        return _metric_entity(name, quoted=quoted, suffix=suffix)
    if suffix is not None:
        raise FilterError(f"only metrics take a summary suffix, got '.{suffix[0]}'", suffix[1])
    if kind == "attribute":
        return Entity("attribute", _lookup(name, pos, "attribute", vocabulary.aliases, vocabulary.attributes))
    if kind == "dataset":
        return Entity("dataset", _lookup(name, pos, "dataset field", _DATASET_ALIASES, _DATASET_FIELDS))
    return Entity(kind, name)


def _metric_entity(name: str, *, quoted: bool, suffix: tuple[str, int] | None) -> Entity:
    if not quoted:
        key, dot, last = name.rpartition(".")
        if dot and last in _AGGS:
            return Entity("metric", key, last)
        return Entity("metric", name, "last")
    if suffix is None:
        return Entity("metric", name, "last")
    if suffix[0] not in _AGGS:
        raise FilterError(f"unknown metric summary {suffix[0]!r} (expected one of {', '.join(_AGGS)})", suffix[1])
    return Entity("metric", name, suffix[0])


def _lookup(name: str, pos: int, what: str, aliases: dict[str, str], known: Collection[str]) -> str:
    key = aliases.get(name.lower(), name.lower())
    if key not in known:
        raise FilterError(f"unknown {what} {name!r} (expected one of {', '.join(known)})", pos)
    return key


# --------------------------------------------------------------------------- type rules

_Convert = Callable[[Scalar, int, str], Scalar]


def _describe_value(value: Scalar) -> str:
    return f"string {value!r}" if isinstance(value, str) else f"number {value!r}"


def _expecting(types: tuple[type, ...], label: str) -> _Convert:
    def convert(value: Scalar, pos: int, subject: str) -> Scalar:
        if not isinstance(value, types):
            raise FilterError(f"{subject} {label}, got {_describe_value(value)}", pos)
        return value

    return convert


_want_number = _expecting((int, float), "a number")
_want_integer = _expecting((int,), "an integer")
_want_string = _expecting((str,), "a string")


def _want_status(value: Scalar, pos: int, subject: str) -> str:
    status = str(_want_string(value, pos, subject)).upper()
    if status not in _STATUSES:
        raise FilterError(f"unknown status {value!r} (expected one of {', '.join(_STATUSES)})", pos)
    return status


def _want_bool(value: Scalar, pos: int, subject: str) -> bool:
    if str(value).lower() not in ("true", "false", "1", "0"):
        raise FilterError(f"{subject} true or false, got {_describe_value(value)}", pos)
    return str(value).lower() in ("true", "1")


def _want_experiment_id(value: Scalar, pos: int, subject: str) -> Scalar:
    if isinstance(value, str) and _DIGITS.fullmatch(value) and int(value) <= _INT_MAX:
        return int(value)
    if isinstance(value, int):
        return value
    raise FilterError(f"{subject} an integer or a numeric string, got {_describe_value(value)}", pos)


_ATTRIBUTE_RULES: dict[str, tuple[frozenset[str], _Convert]] = {
    "run_id": (_STRING_OPS, _want_string),
    "run_name": (_STRING_OPS, _want_string),
    "status": (_EQUALITY_OPS, _want_status),
    "start_time": (_NUMERIC_OPS, _want_number),
    "end_time": (_NUMERIC_OPS, _want_number),
    "user": (_STRING_OPS, _want_string),
    "experiment_id": (_EQUALITY_OPS, _want_experiment_id),
    "parent_run_id": (_STRING_OPS, _want_string),
    "lifecycle": (_STRING_OPS, _want_string),
    "compliant": (frozenset({"=", "!="}), _want_bool),
}


@dataclass(frozen=True)
class Vocabulary:
    """What a search may name: its attributes (with their operators and value types, and other names they
    go by) and which keyed kinds it has (metrics, params, tags, datasets). Runs have them all; experiments,
    registered models, model versions and logged models each have their own attributes and fewer kinds."""

    what: str  # "runs", "experiments", ... for messages
    attributes: dict[str, tuple[frozenset[str], _Convert]]
    aliases: dict[str, str]
    kinds: frozenset[EntityKind]


RUNS = Vocabulary("runs", _ATTRIBUTE_RULES, _ATTRIBUTE_ALIASES,
                  frozenset({"metric", "param", "tag", "attribute", "dataset"}))
_TEXT = (_STRING_OPS, _want_string)
_TIME = (_NUMERIC_OPS, _want_number)
EXPERIMENTS = Vocabulary(
    "experiments", {"name": _TEXT, "experiment_id": (_EQUALITY_OPS, _want_experiment_id), "creation_time": _TIME,
                    "last_update_time": _TIME}, {"id": "experiment_id"}, frozenset({"tag", "attribute"}))
REGISTERED_MODELS = Vocabulary(
    "registered models", {"name": _TEXT, "creation_timestamp": _TIME, "last_updated_timestamp": _TIME},
    {"timestamp": "creation_timestamp"}, frozenset({"tag", "attribute"}))
MODEL_VERSIONS = Vocabulary(
    "model versions", {"name": _TEXT, "version_number": (_NUMERIC_OPS | _LIST_OPS, _want_integer),
                       "run_id": _TEXT, "source_path": _TEXT, "current_stage": _TEXT, "creation_timestamp": _TIME,
                       "last_updated_timestamp": _TIME},
    {"version": "version_number", "timestamp": "creation_timestamp"}, frozenset({"tag", "attribute"}))
LOGGED_MODELS = Vocabulary(
    "logged models", {"name": _TEXT, "model_id": _TEXT, "model_type": _TEXT, "status": _TEXT,
                      "source_run_id": _TEXT, "creation_timestamp": _TIME, "last_updated_timestamp": _TIME,
                      "experiment_id": (_EQUALITY_OPS, _want_experiment_id)},
    {"creation_time": "creation_timestamp", "last_updated_time": "last_updated_timestamp", "run_id": "source_run_id"},
    frozenset({"metric", "param", "tag", "attribute"}))


@dataclass(frozen=True)
class _Rule:
    ops: frozenset[str]
    convert: _Convert
    subject: str  # start of a type-error message, e.g. "metric comparisons take"
    noun: str  # what the operator applies to, e.g. "metrics"


def _rule_for(entity: Entity, vocabulary: Vocabulary) -> _Rule:
    if entity.kind == "metric" and entity.agg == "count":
        return _Rule(_NUMERIC_OPS | _NULL_OPS, _want_integer, "metric count comparisons take", "metrics")
    if entity.kind == "metric":
        return _Rule(_NUMERIC_OPS | _NULL_OPS, _want_number, "metric comparisons take", "metrics")
    if entity.kind in ("param", "tag"):
        ops = _STRING_OPS | _NUMERIC_OPS | _NULL_OPS
        return _Rule(ops, _want_string, f"{entity.kind} comparisons take", f"{entity.kind}s")
    if entity.kind == "dataset":
        noun = f"dataset field '{entity.key}'"
        return _Rule(_STRING_OPS, _want_string, f"{noun} takes", noun)
    ops, convert = vocabulary.attributes[entity.key]
    noun = f"attribute '{entity.key}'"
    return _Rule(ops, convert, f"{noun} takes", noun)


def _check_op(rule: _Rule, op: str, token: Token) -> None:
    if op not in rule.ops:
        allowed = ", ".join(o for o in _ALL_OPS if o in rule.ops)
        raise FilterError(f"operator {op} cannot be used with {rule.noun} (allowed: {allowed})", token.start)


def _to_number(token: Token) -> Scalar:
    if _INTEGER.fullmatch(token.text):
        number = int(token.text)
        if not _INT_MIN <= number <= _INT_MAX:
            raise FilterError(f"integer {token.text} is out of range", token.start)
        return number
    result = float(token.text)
    if not math.isfinite(result):
        raise FilterError(f"number {token.text} is out of range", token.start)
    return result


# -------------------------------------------------------------------------------- parser


def _combine(op: Literal["and", "or"], items: list[Node]) -> Node:
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, BoolOp) and item.op == op else (item,))
    return BoolOp(op, tuple(flat))


class _Parser:
    def __init__(self, text: str, vocabulary: Vocabulary = RUNS) -> None:
        if len(text) > MAX_FILTER_LENGTH:
            raise FilterError(f"text is longer than {MAX_FILTER_LENGTH} characters", MAX_FILTER_LENGTH)
        self.text = text
        self.vocabulary = vocabulary
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0
        self.comparisons = 0

    # token helpers
    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() in words

    def expect_keyword(self, word: str, after: str) -> None:
        token = self.advance()
        if token.kind != "word" or token.text.lower() != word:
            raise FilterError(f"expected {word.upper()} after {after}, got {describe_token(token)}", token.start)

    # boolean structure: an "or" of "and"s of primaries
    def parse_or(self) -> Node:
        return self.parse_chain("or", self.parse_and)

    def parse_and(self) -> Node:
        return self.parse_chain("and", self.parse_primary)

    def parse_chain(self, op: Literal["and", "or"], parse_item: Callable[[], Node]) -> Node:
        items = [parse_item()]
        while self.at_keyword(op):
            self.advance()
            items.append(parse_item())
        return _combine(op, items)

    def parse_primary(self) -> Node:
        node = self.parse_group() if self.peek().kind == "(" else self.parse_comparison()
        token = self.peek()
        if token.kind not in ("end", ")") and not self.at_keyword("and", "or"):
            raise FilterError(f"expected 'and' or 'or' between comparisons, got {describe_token(token)}", token.start)
        return node

    def parse_group(self) -> Node:
        opening = self.advance()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"parentheses are nested more than {MAX_DEPTH} levels deep", opening.start)
        node = self.parse_or()
        closing = self.advance()
        if closing.kind != ")":
            message = f"expected ')' to close the '(' at position {opening.start}, got {describe_token(closing)}"
            raise FilterError(message, closing.start)
        self.depth -= 1
        return node

    # comparisons
    def parse_comparison(self) -> Comparison:
        start = self.peek().start
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise FilterError(f"too many comparisons (at most {MAX_COMPARISONS})", start)
        entity = self.parse_entity()
        op, op_token = self.parse_operator(self.text[start : self.tokens[self.index - 1].end])
        rule = _rule_for(entity, self.vocabulary)
        _check_op(rule, op, op_token)
        return Comparison(entity, op, self.parse_operand(op, op_token, rule), start)

    def parse_entity(self) -> Entity:
        token = self.advance()
        if token.kind != "word" or token.text.lower() in _KEYWORDS:
            message = f"expected a column such as metrics.loss or params.lr, got {describe_token(token)}"
            raise FilterError(message, token.start)
        head, dot, rest = token.text.partition(".")
        kind = _KINDS.get(head.lower())
        if not dot and kind is not None:
            raise FilterError(f"expected '.' and a name after {head!r}", token.end)
        if not dot:
            return _make_entity("attribute", token.text, token.start, quoted=False, suffix=None,
                                vocabulary=self.vocabulary)
        if kind is None:
            raise FilterError(f"unknown column type {head!r} (expected metrics, params, tags, ...)", token.start)
        if kind not in self.vocabulary.kinds:
            raise FilterError(f"{self.vocabulary.what} have no {kind}s to filter or sort on", token.start)
        if rest:
            return _make_entity(kind, rest, token.start + len(head) + 1, quoted=False, suffix=None,
                                vocabulary=self.vocabulary)
        return self.parse_quoted_name(kind, token)

    def parse_quoted_name(self, kind: EntityKind, prefix: Token) -> Entity:
        name = self.advance()
        if name.start != prefix.end or not (name.kind == "qname" or name.text.startswith('"')):
            raise FilterError(f"expected a name after {prefix.text!r}", prefix.end)
        suffix = None
        following = self.peek()
        if following.kind == "word" and following.start == name.end and following.text.startswith("."):
            self.advance()
            suffix = (following.text[1:], following.start + 1)
        return _make_entity(kind, name.value, name.start, quoted=True, suffix=suffix, vocabulary=self.vocabulary)

    def parse_operator(self, column: str) -> tuple[str, Token]:
        token = self.advance()
        if token.kind == "op":
            return _SYMBOL_OPS[token.text], token
        word = token.text.lower() if token.kind == "word" else ""
        if word in ("like", "ilike", "in"):
            return word.upper(), token
        if word == "not":
            self.expect_keyword("in", "NOT")
            return "NOT IN", token
        if word == "is":
            negated = self.at_keyword("not")
            if negated:
                self.advance()
            self.expect_keyword("null", "IS NOT" if negated else "IS")
            return ("IS NOT NULL" if negated else "IS NULL"), token
        raise FilterError(f"expected an operator after {column!r}, got {describe_token(token)}", token.start)

    def parse_operand(self, op: str, op_token: Token, rule: _Rule) -> Value:
        if op in _NULL_OPS:
            return None
        if op in _LIST_OPS:
            return tuple(rule.convert(value, pos, rule.subject) for value, pos in self.parse_list(op))
        value, pos = self.parse_value(op_token.text)
        if op in ("LIKE", "ILIKE") and isinstance(value, str) and len(value) > MAX_PATTERN:
            raise FilterError(f"a {op} pattern may be at most {MAX_PATTERN} characters (this one has {len(value)})",
                              pos)
        return rule.convert(value, pos, rule.subject)

    def parse_value(self, after: str) -> tuple[Scalar, int]:
        token = self.advance()
        if token.kind == "number":
            return _to_number(token), token.start
        if token.kind == "string" or (token.kind == "word" and token.text.lower() in ("true", "false")):
            return token.value, token.start
        if token.kind == "end":
            raise FilterError(f"expected a value after {after!r}", token.start)
        message = f"expected a number or a quoted string after {after!r}, got {describe_token(token)}"
        raise FilterError(message, token.start)

    def parse_list(self, op: str) -> list[tuple[Scalar, int]]:
        opening = self.advance()
        if opening.kind != "(":
            raise FilterError(f"{op} needs a parenthesized list of values, got {describe_token(opening)}",
                              opening.start)
        if self.peek().kind == ")":
            raise FilterError(f"the {op} list must not be empty", self.peek().start)
        values = [self.parse_value(f"{op} (")]
        while (separator := self.advance()).kind == ",":
            values.append(self.parse_value(","))
        if separator.kind != ")":
            raise FilterError(f"expected ',' or ')' in the {op} list, got {describe_token(separator)}", separator.start)
        return values

    # order-by
    def parse_order_clause(self) -> OrderBy:
        start = self.peek().start
        if self.peek().kind == "end":
            raise FilterError("empty clause", start)
        entity = self.parse_entity()
        if entity.kind == "dataset":
            raise FilterError("cannot order by dataset fields", start)
        ascending = True
        if self.at_keyword("asc", "desc"):
            ascending = self.advance().text.lower() == "asc"
        token = self.peek()
        if token.kind != "end":
            raise FilterError(f"expected ASC, DESC or the end of the clause, got {describe_token(token)}", token.start)
        return OrderBy(entity, ascending)


# ----------------------------------------------------------------------------- public API


def parse_filter(text: str | None, vocabulary: Vocabulary = RUNS) -> Node | None:
    """Parse a search filter over ``vocabulary``; ``None``, empty or blank text gives ``None``."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise FilterError(f"the filter must be a string, not {type(text).__name__}", 0)
    parser = _Parser(text, vocabulary)
    if parser.peek().kind == "end":
        return None
    node = parser.parse_or()
    token = parser.peek()
    if token.kind == ")":
        raise FilterError("unmatched ')'", token.start)
    return node


def parse_order_by(clauses: Sequence[str] | None, vocabulary: Vocabulary = RUNS) -> list[OrderBy]:
    """Parse order-by clauses such as ``metrics.loss.min ASC``; a bare string is one clause."""
    if clauses is None:
        return []
    if not isinstance(clauses, str | list | tuple):
        raise FilterError(f"order_by must be a string or a list of strings, not {type(clauses).__name__}", 0)
    items = [clauses] if isinstance(clauses, str) else list(clauses)
    if len(items) > MAX_ORDER_BY:
        raise FilterError(f"too many order_by clauses (at most {MAX_ORDER_BY})", 0, clause=MAX_ORDER_BY)
    return [_parse_clause(item, index, vocabulary) for index, item in enumerate(items)]


def check_query(filter_text: str | None, order_by: Sequence[str] = (),
                vocabulary: Vocabulary = RUNS) -> tuple[Node | None, list[OrderBy]]:
    """The parsed filter and ordering of a search; a malformed one raises InvalidInputError naming the part
    (``filter`` or ``order_by``) and the position."""
    try:
        return parse_filter(filter_text, vocabulary), parse_order_by(list(order_by), vocabulary)
    except FilterError as exc:
        raise InvalidInputError(str(exc), field="filter" if exc.clause is None else "order_by",
                                position=exc.position) from exc


def _parse_clause(text: str, index: int, vocabulary: Vocabulary) -> OrderBy:
    if not isinstance(text, str):
        raise FilterError(f"expected a string, got {type(text).__name__}", 0, clause=index)
    try:
        return _Parser(text, vocabulary).parse_order_clause()
    except FilterError as error:
        raise FilterError(error.message, error.position, clause=index) from None
