"""Tests for the run-search filter and order-by parser."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from cairn.server.services.filters import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_ORDER_BY,
    BoolOp,
    Comparison,
    Entity,
    FilterError,
    Node,
    OrderBy,
    parse_filter,
    parse_order_by,
)


def comparison(text: str) -> Comparison:
    node = parse_filter(text)
    assert isinstance(node, Comparison)
    return node


def entity(text: str) -> Entity:
    return comparison(text).entity


def error(text: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    return info.value


def count_comparisons(node: Node) -> int:
    if isinstance(node, Comparison):
        return 1
    return sum(count_comparisons(item) for item in node.items)


# ---------------------------------------------------------------------------- basics


@pytest.mark.parametrize("text", [None, "", "   ", "\t\n "])
def test_empty_filter_is_none(text: str | None) -> None:
    assert parse_filter(text) is None


def test_simple_comparison() -> None:
    assert parse_filter("metrics.loss < 0.5") == Comparison(Entity("metric", "loss", "last"), "<", 0.5, 0)


def test_comparison_position_is_start_of_entity() -> None:
    node = parse_filter("  params.a = 'x' and  tags.b = 'y'")
    assert isinstance(node, BoolOp)
    assert [item.position for item in node.items if isinstance(item, Comparison)] == [2, 22]


# -------------------------------------------------------------------------- entities


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        ("metrics", "metric"),
        ("metric", "metric"),
        ("METRICS", "metric"),
        ("params", "param"),
        ("param", "param"),
        ("tags", "tag"),
        ("tag", "tag"),
    ],
)
def test_kind_aliases(prefix: str, kind: str) -> None:
    value = "1" if kind == "metric" else "'1'"
    assert entity(f"{prefix}.k = {value}").kind == kind


@pytest.mark.parametrize("prefix", ["attributes", "attribute", "attr", "run", "Attributes", ""])
def test_attribute_prefixes(prefix: str) -> None:
    column = f"{prefix}.status" if prefix else "status"
    assert entity(f"{column} = 'RUNNING'") == Entity("attribute", "status", None)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("run_id", "run_id"),
        ("id", "run_id"),
        ("run_name", "run_name"),
        ("name", "run_name"),
        ("user", "user"),
        ("user_id", "user"),
        ("parent_run_id", "parent_run_id"),
        ("lifecycle", "lifecycle"),
        ("RUN_NAME", "run_name"),
    ],
)
def test_string_attribute_aliases(name: str, key: str) -> None:
    assert entity(f"attributes.{name} = 'x'") == Entity("attribute", key, None)
    assert entity(f"{name} LIKE 'x%'") == Entity("attribute", key, None)


@pytest.mark.parametrize(
    ("name", "key"), [("start_time", "start_time"), ("created", "start_time"), ("end_time", "end_time")]
)
def test_time_attributes(name: str, key: str) -> None:
    node = comparison(f"{name} >= 1700000000000")
    assert node.entity == Entity("attribute", key, None)
    assert node.value == 1700000000000


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("datasets.name = 'mnist'", "name"),
        ("dataset.digest = 'abc'", "digest"),
        ("datasets.role = 'train'", "role"),
        ("datasets.context = 'train'", "role"),
        ("datasets.uri LIKE 's3://%'", "uri"),
        ("datasets.version ILIKE 'V1'", "version"),
        ("datasets.name IN ('a', 'b')", "name"),
        ("datasets.name NOT IN ('a')", "name"),
        ("datasets.name != 'a'", "name"),
    ],
)
def test_dataset_fields(text: str, key: str) -> None:
    assert entity(text) == Entity("dataset", key, None)


# ---------------------------------------------------------------------- metric suffix


@pytest.mark.parametrize(
    ("column", "key", "agg"),
    [
        ("metrics.loss", "loss", "last"),
        ("metrics.val_loss.min", "val_loss", "min"),
        ("metrics.val_loss.max", "val_loss", "max"),
        ("metrics.val_loss.mean", "val_loss", "mean"),
        ("metrics.val_loss.best", "val_loss", "best"),
        ("metrics.val_loss.last", "val_loss", "last"),
        ("metrics.val.loss", "val.loss", "last"),
        ("metrics.a.b.min", "a.b", "min"),
        ("metrics.min", "min", "last"),
        ("metrics.train/loss", "train/loss", "last"),
        ("metrics.eval:acc-top5", "eval:acc-top5", "last"),
        ("metrics.loss.MIN", "loss.MIN", "last"),
        ("metrics.`my.key`", "my.key", "last"),
        ("metrics.`loss.min`", "loss.min", "last"),
        ("metrics.`loss.min`.max", "loss.min", "max"),
        ('metrics."loss min".mean', "loss min", "mean"),
    ],
)
def test_metric_suffix_rules(column: str, key: str, agg: str) -> None:
    assert entity(f"{column} > 1") == Entity("metric", key, agg)


def test_metric_count_takes_integers() -> None:
    node = comparison("metrics.loss.count >= 10")
    assert node.entity == Entity("metric", "loss", "count")
    assert node.value == 10


@pytest.mark.parametrize(("column", "key"), [("params.model.lr", "model.lr"), ("params.x.min", "x.min")])
def test_param_dotted_name_is_whole_key(column: str, key: str) -> None:
    assert entity(f"{column} = '1'") == Entity("param", key, None)


def test_tag_dotted_name_is_whole_key() -> None:
    assert entity("tags.mlflow.user = 'a'") == Entity("tag", "mlflow.user", None)


# --------------------------------------------------------------------------- quoting


@pytest.mark.parametrize(
    ("column", "key"),
    [
        ('tags."mlflow.runName"', "mlflow.runName"),
        ("tags.`a b`", "a b"),
        ("params.`with ``tick`` inside`", "with `tick` inside"),
        ('params."with ""quote"" inside"', 'with "quote" inside'),
        ("tags.`!@#$%^&*()=<>'`", "!@#$%^&*()=<>'"),
        ("attributes.`status`", "status"),
    ],
)
def test_quoted_names(column: str, key: str) -> None:
    value = "'RUNNING'" if "status" in column else "'v'"
    assert entity(f"{column} = {value}").key == key


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'abc'", "abc"),
        ('"abc"', "abc"),
        ("''", ""),
        ("'it''s'", "it's"),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'back\\slash'", "back\\slash"),
        (r"'50\%'", "50\\%"),
        ("'a and b = c'", "a and b = c"),
        ("'ünïcödé'", "ünïcödé"),
    ],
)
def test_string_values(literal: str, value: str) -> None:
    assert comparison(f"params.p = {literal}").value == value


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("5", 5),
        ("-5", -5),
        ("+5", 5),
        ("0.5", 0.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e-3", 0.001),
        ("-1.5E+2", -150.0),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_number_values(literal: str, value: float) -> None:
    result = comparison(f"metrics.m = {literal}").value
    assert result == value
    assert type(result) is type(value)


def test_no_space_needed_around_operators() -> None:
    node = parse_filter("metrics.a>-5 and params.b='x'and(tags.c!='y')")
    assert isinstance(node, BoolOp)
    assert [(c.op, c.value) for c in node.items if isinstance(c, Comparison)] == [(">", -5), ("=", "x"), ("!=", "y")]


# ------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("op", "normalized"),
    [("=", "="), ("==", "="), ("!=", "!="), ("<>", "!="), ("<", "<"), ("<=", "<="), (">", ">"), (">=", ">=")],
)
def test_symbol_operators(op: str, normalized: str) -> None:
    assert comparison(f"metrics.m {op} 1").op == normalized
    assert comparison(f"params.p {op} '1'").op == normalized


@pytest.mark.parametrize(
    ("op", "normalized"), [("LIKE", "LIKE"), ("like", "LIKE"), ("ILike", "ILIKE"), ("ilike", "ILIKE")]
)
def test_like_operators(op: str, normalized: str) -> None:
    assert comparison(f"tags.t {op} 'a%'").op == normalized


def test_in_lists() -> None:
    assert comparison("params.p IN ('a', \"b\", 'c')").value == ("a", "b", "c")
    assert comparison("params.p in ('a')").value == ("a",)
    node = comparison("tags.t NOT IN ('x','y')")
    assert (node.op, node.value) == ("NOT IN", ("x", "y"))
    assert comparison("run_id not  in ( 'r1' )").value == ("r1",)


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("metrics.m IS NULL", "IS NULL"),
        ("metrics.m.max is not null", "IS NOT NULL"),
        ("params.p IS NULL", "IS NULL"),
        ("tags.t Is Not Null", "IS NOT NULL"),
    ],
)
def test_is_null(text: str, op: str) -> None:
    node = comparison(text)
    assert (node.op, node.value) == (op, None)


# ------------------------------------------------------------------------ type rules


def test_status_values_are_normalized() -> None:
    assert comparison("status = 'running'").value == "RUNNING"
    assert comparison("status IN ('finished', 'Failed', 'KILLED')").value == ("FINISHED", "FAILED", "KILLED")


def test_experiment_id_takes_numbers_and_numeric_strings() -> None:
    assert comparison("experiment_id = 3").value == 3
    assert comparison("experiment_id = '3'").value == 3
    assert comparison("experiment_id IN (1, '2')").value == (1, 2)
    assert comparison("experiment_id != '0042'").value == 42


def test_params_and_tags_allow_string_ordering() -> None:
    assert comparison("params.p < 'b'").op == "<"
    assert comparison("tags.t >= 'b'").op == ">="


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("metrics.m = 'abc'", "metric comparisons take a number, got string 'abc'", 12),
        ("metrics.m IN (1, 2)", "operator IN cannot be used with metrics", 10),
        ("metrics.m LIKE 'a'", "operator LIKE cannot be used with metrics", 10),
        ("metrics.m.count = 1.5", "metric count comparisons take an integer, got number 1.5", 18),
        ("params.p = 5", "param comparisons take a string, got number 5", 11),
        ("tags.t IN ('a', 5)", "tag comparisons take a string, got number 5", 16),
        ("start_time = '2024'", "attribute 'start_time' takes a number, got string '2024'", 13),
        ("end_time LIKE 'a'", "operator LIKE cannot be used with attribute 'end_time'", 9),
        ("status < 'RUNNING'", "operator < cannot be used with attribute 'status'", 7),
        ("status LIKE 'R%'", "operator LIKE cannot be used with attribute 'status'", 7),
        ("status = 'DONE'", "unknown status 'DONE'", 9),
        ("status = 1", "attribute 'status' takes a string, got number 1", 9),
        ("status IN ('RUNNING', 'nope')", "unknown status 'nope'", 22),
        ("run_name = 1", "attribute 'run_name' takes a string, got number 1", 11),
        ("run_id > 'a'", "operator > cannot be used with attribute 'run_id'", 7),
        ("user IS NULL", "operator IS NULL cannot be used with attribute 'user'", 5),
        ("experiment_id = 'abc'", "attribute 'experiment_id' takes an integer or a numeric string", 16),
        ("experiment_id = 1.5", "attribute 'experiment_id' takes an integer or a numeric string", 16),
        ("experiment_id LIKE '1'", "operator LIKE cannot be used with attribute 'experiment_id'", 14),
        ("experiment_id > 1", "operator > cannot be used with attribute 'experiment_id'", 14),
        ("datasets.name = 1", "dataset field 'name' takes a string, got number 1", 16),
        ("datasets.name < 'a'", "operator < cannot be used with dataset field 'name'", 14),
        ("datasets.name IS NULL", "operator IS NULL cannot be used with dataset field 'name'", 14),
    ],
)
def test_type_rule_errors(text: str, message: str, position: int) -> None:
    exc = error(text)
    assert message in exc.message
    assert exc.position == position


# ------------------------------------------------------------------ boolean structure


def test_and_binds_tighter_than_or() -> None:
    node = parse_filter("metrics.a > 1 or metrics.b > 1 and metrics.c > 1")
    assert isinstance(node, BoolOp)
    assert node.op == "or"
    left, right = node.items
    assert isinstance(left, Comparison)
    assert left.entity.key == "a"
    assert isinstance(right, BoolOp)
    assert right.op == "and"
    assert [item.entity.key for item in right.items if isinstance(item, Comparison)] == ["b", "c"]


def test_parentheses_override_precedence() -> None:
    node = parse_filter("(metrics.a > 1 OR metrics.b > 1) AND metrics.c > 1")
    assert isinstance(node, BoolOp)
    assert node.op == "and"
    inner, last = node.items
    assert isinstance(inner, BoolOp)
    assert inner.op == "or"
    assert isinstance(last, Comparison)
    assert last.position == 37


def test_same_operator_is_flattened() -> None:
    node = parse_filter("metrics.a > 1 and (metrics.b > 1 and metrics.c > 1) and metrics.d > 1")
    assert isinstance(node, BoolOp)
    assert node.op == "and"
    assert [item.entity.key for item in node.items if isinstance(item, Comparison)] == ["a", "b", "c", "d"]


def test_redundant_parentheses() -> None:
    assert parse_filter("((metrics.a > 1))") == Comparison(Entity("metric", "a", "last"), ">", 1, 2)


def test_mixed_case_connectors() -> None:
    node = parse_filter("metrics.a > 1 AnD metrics.b > 1 oR metrics.c > 1")
    assert isinstance(node, BoolOp)
    assert node.op == "or"


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("metrics.loss < ", "expected a value after '<'", 15),
        ("metrics.loss <", "expected a value after '<'", 14),
        ("metrics.loss", "expected an operator after 'metrics.loss', got end of input", 12),
        ("metrics.loss ~ 1", "unexpected character '~'", 13),
        ("metrics.loss ! 1", "unexpected character '!'", 13),
        ("metrics.loss = abc", "expected a number or a quoted string after '=', got 'abc'", 15),
        ("metrics.loss = 1abc", "expected a number or a quoted string after '=', got '1abc'", 15),
        ("params.p = 'abc", "unterminated string", 11),
        ('params.p = "abc', "unterminated string", 11),
        ("params.`abc = 'x'", "unterminated quoted name", 7),
        (r"params.p = 'abc\'", "unterminated string", 11),
        ("foo = 'x'", "unknown attribute 'foo'", 0),
        ("attributes.foo = 'x'", "unknown attribute 'foo'", 11),
        ("attributes.status.x = 'x'", "unknown attribute 'status.x'", 11),
        ("datasets.foo = 'x'", "unknown dataset field 'foo'", 9),
        ("bogus.x = 1", "unknown column type 'bogus'", 0),
        ("metrics = 1", "expected '.' and a name after 'metrics'", 7),
        ("metrics. `x` = 1", "expected a name after 'metrics.'", 8),
        ("metrics.'x' = 1", "expected a name after 'metrics.'", 8),
        ("metrics.`` = 1", "empty name", 8),
        ("metrics.a..b = 1", "empty segment between dots", 8),
        ("metrics.a. = 1", "empty segment between dots", 8),
        ("metrics.`a`.median = 1", "unknown metric summary 'median'", 12),
        ("params.`a`.min = 'x'", "only metrics take a summary suffix, got '.min'", 11),
        ("metrics.a > 1 metrics.b > 1", "expected 'and' or 'or' between comparisons", 14),
        ("metrics.a > 1 and", "expected a column such as metrics.loss or params.lr, got end of input", 17),
        ("and metrics.a > 1", "expected a column such as metrics.loss or params.lr, got 'and'", 0),
        ("metrics.a > 1 and or metrics.b > 1", "got 'or'", 18),
        ("(metrics.a > 1", "expected ')' to close the '(' at position 0, got end of input", 14),
        ("metrics.a > 1)", "unmatched ')'", 13),
        ("()", "expected a column", 1),
        ("(metrics.a > 1) metrics.b > 1", "expected 'and' or 'or' between comparisons", 16),
        ("'x' = 1", "expected a column", 0),
        ("5 = 1", "expected a column", 0),
        ("params.p IN 'a'", "IN needs a parenthesized list of values, got \"'a'\"", 12),
        ("params.p IN ()", "the IN list must not be empty", 13),
        ("params.p NOT IN ('a' 'b')", "expected ',' or ')' in the NOT IN list, got \"'b'\"", 21),
        ("params.p IN ('a',)", "expected a number or a quoted string after ',', got ')'", 17),
        ("params.p IN ('a'", "expected ',' or ')' in the IN list, got end of input", 16),
        ("params.p NOT LIKE 'a'", "expected IN after NOT, got 'LIKE'", 13),
        ("params.p IS 'a'", "expected NULL after IS, got \"'a'\"", 12),
        ("params.p IS NOT 'a'", "expected NULL after IS NOT", 16),
        ("metrics.m = 1e999", "number 1e999 is out of range", 12),
        ("metrics.m = 9223372036854775808", "integer 9223372036854775808 is out of range", 12),
        ("metrics.m => 1", "expected a number or a quoted string after '=', got '>'", 11),
        ("metrics.m = `x`", "got '`x`'", 12),
    ],
)
def test_errors(text: str, message: str, position: int) -> None:
    exc = error(text)
    assert message in exc.message
    assert exc.position == position
    assert str(exc) == f"invalid filter at position {position}: {exc.message}"


def test_error_is_value_error_and_picklable() -> None:
    assert issubclass(FilterError, ValueError)
    exc = error("metrics.loss < ")
    assert exc.clause is None
    assert str(exc) == "invalid filter at position 15: expected a value after '<'"
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.message, copy.position, str(copy)) == (exc.message, exc.position, str(exc))


def test_long_tokens_are_truncated_in_messages() -> None:
    exc = error("metrics.a > 1 " + "x" * 200)
    assert len(exc.message) < 120


# ---------------------------------------------------------------------------- limits


def test_length_limit() -> None:
    padding = " " * (MAX_FILTER_LENGTH - len("metrics.a > 1"))
    assert parse_filter("metrics.a > 1" + padding) is not None
    exc = error("metrics.a > 1" + padding + " ")
    assert exc.position == MAX_FILTER_LENGTH
    assert "longer than 4000 characters" in exc.message


def test_comparison_limit() -> None:
    clauses = ["metrics.a > 1"] * MAX_COMPARISONS
    node = parse_filter(" or ".join(clauses))
    assert node is not None
    assert count_comparisons(node) == MAX_COMPARISONS
    text = " or ".join([*clauses, "metrics.b > 1"])
    exc = error(text)
    assert "too many comparisons" in exc.message
    assert exc.position == text.index("metrics.b")


def test_depth_limit() -> None:
    assert parse_filter("(" * MAX_DEPTH + "metrics.a > 1" + ")" * MAX_DEPTH) is not None
    exc = error("(" * (MAX_DEPTH + 1) + "metrics.a > 1" + ")" * (MAX_DEPTH + 1))
    assert "nested more than 20 levels" in exc.message
    assert exc.position == MAX_DEPTH


def test_deep_nesting_never_recurses_out() -> None:
    exc = error("(" * 3000)
    assert exc.position == MAX_DEPTH


def test_sequential_groups_do_not_count_as_depth() -> None:
    text = " and ".join(["(metrics.a > 1)"] * 30)
    node = parse_filter(text)
    assert node is not None
    assert count_comparisons(node) == 30


# -------------------------------------------------------------------------- order by


def test_order_by_none_and_empty() -> None:
    assert parse_order_by(None) == []
    assert parse_order_by([]) == []


def test_order_by_clauses() -> None:
    result = parse_order_by(
        [
            "metrics.val_loss.min ASC",
            "params.lr",
            "attributes.start_time DESC",
            "start_time desc",
            "tags.`a b` desc",
            'metrics."x.y".best',
            "  run.name   Asc ",
            "metrics.loss",
        ]
    )
    assert result == [
        OrderBy(Entity("metric", "val_loss", "min"), True),
        OrderBy(Entity("param", "lr", None), True),
        OrderBy(Entity("attribute", "start_time", None), False),
        OrderBy(Entity("attribute", "start_time", None), False),
        OrderBy(Entity("tag", "a b", None), False),
        OrderBy(Entity("metric", "x.y", "best"), True),
        OrderBy(Entity("attribute", "run_name", None), True),
        OrderBy(Entity("metric", "loss", "last"), True),
    ]


def test_order_by_bare_string_is_one_clause() -> None:
    assert parse_order_by("start_time DESC") == [OrderBy(Entity("attribute", "start_time", None), False)]


@pytest.mark.parametrize(
    ("clauses", "index", "message", "position"),
    [
        (["start_time", "datasets.name"], 1, "cannot order by dataset fields", 0),
        (["  foo ASC"], 0, "unknown attribute 'foo'", 2),
        (["start_time", "start_time sideways"], 1, "expected ASC, DESC or the end of the clause, got 'sideways'", 11),
        (["start_time ASC DESC"], 0, "expected ASC, DESC or the end of the clause, got 'DESC'", 15),
        (["metrics.a, metrics.b"], 0, "got ','", 9),
        ([""], 0, "empty clause", 0),
        (["   "], 0, "empty clause", 3),
        (["tags.`a"], 0, "unterminated quoted name", 5),
        (["metrics.`a`.median"], 0, "unknown metric summary 'median'", 12),
        (["ASC"], 0, "unknown attribute 'ASC'", 0),
        (["x" * (MAX_FILTER_LENGTH + 1)], 0, "longer than", MAX_FILTER_LENGTH),
    ],
)
def test_order_by_errors(clauses: list[str], index: int, message: str, position: int) -> None:
    with pytest.raises(FilterError) as info:
        parse_order_by(clauses)
    exc = info.value
    assert message in exc.message
    assert (exc.clause, exc.position) == (index, position)
    assert str(exc) == f"invalid order_by clause {index} at position {position}: {exc.message}"


def test_order_by_clause_limit() -> None:
    assert len(parse_order_by(["start_time"] * MAX_ORDER_BY)) == MAX_ORDER_BY
    with pytest.raises(FilterError, match="too many order_by clauses"):
        parse_order_by(["start_time"] * (MAX_ORDER_BY + 1))


def test_order_by_non_string_clause() -> None:
    not_strings: list[Any] = [None]
    with pytest.raises(FilterError, match="expected a string"):
        parse_order_by(not_strings)


# ------------------------------------------------------------------------ properties

_FRAGMENTS = [
    "metrics.", "params.", "tags.", "attributes.", "datasets.", "loss", ".min", ".count", "status",
    "start_time", "experiment_id", "name", " and ", " or ", " not ", " in ", " is ", " null", " like ",
    "(", ")", ",", "=", "==", "!=", "<>", "<", "<=", ">", ">=", "'", '"', "`", "\\", "1", "-2.5", "1e-3",
    "1e999", "'RUNNING'", "'x'", " ", "\t", "..", "asc", "desc",
]  # fmt: skip

_COMPARISONS = [
    "metrics.loss < 0.5",
    "metrics.`a.b`.max >= -1",
    "params.lr = '0.1'",
    "tags.\"x y\" LIKE 'a%'",
    "status IN ('RUNNING', 'failed')",
    "experiment_id = '3'",
    "datasets.role != 'eval'",
    "params.p IS NULL",
    "start_time > 1",
]


def caught(call: Callable[[], object]) -> FilterError | None:
    try:
        call()
    except FilterError as exc:
        return exc
    return None


@settings(max_examples=400, deadline=None, database=None)
@given(st.text(max_size=200))
def test_random_text_only_raises_filter_error(text: str) -> None:
    exc = caught(lambda: parse_filter(text))
    assert exc is None or 0 <= exc.position <= len(text)


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30).map("".join))
def test_random_fragments_only_raise_filter_error(text: str) -> None:
    exc = caught(lambda: parse_filter(text))
    assert exc is None or 0 <= exc.position <= len(text)
    exc = caught(lambda: parse_order_by([text]))
    assert exc is None or (exc.clause == 0 and 0 <= exc.position <= len(text))


def _expressions() -> st.SearchStrategy[tuple[str, int]]:
    leaf = st.sampled_from(_COMPARISONS).map(lambda text: (text, 1))

    def extend(children: st.SearchStrategy[tuple[str, int]]) -> st.SearchStrategy[tuple[str, int]]:
        pair = st.tuples(children, st.sampled_from([" and ", " OR ", " And "]), children)
        return pair.map(lambda p: (f"({p[0][0]}){p[1]}{p[2][0]}", p[0][1] + p[2][1]))

    return st.recursive(leaf, extend, max_leaves=12)


@settings(max_examples=200, deadline=None, database=None)
@given(_expressions())
def test_valid_expressions_parse(expression: tuple[str, int]) -> None:
    text, expected = expression
    node = parse_filter(text)
    assert node is not None
    assert count_comparisons(node) == expected


def test_like_patterns_are_capped() -> None:
    """Patterns go to the database's LIKE (linear), never a regex; their length is bounded too."""
    parse_filter("tags.t LIKE '" + "%a" * 250 + "'")
    with pytest.raises(FilterError, match="at most 500") as caught:
        parse_filter("tags.t ILIKE '" + "%" * 501 + "'")
    assert caught.value.position == len("tags.t ILIKE ")
