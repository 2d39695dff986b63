"""The Contacthub query language (hub.query): parsing into the Atomic/Group tree."""

from __future__ import annotations

import json

import pytest

from contactsync.errors import InputError
from contactsync.hub.query import Atomic, Group, Sort, parse_query, parse_sort


def atomic(attribute, operator, value=None):
    c = {"type": "atomic", "attribute": attribute, "operator": operator}
    if value is not None:
        c["value"] = value
    return c


def simple(condition):
    return {"type": "simple", "name": "q", "are": {"condition": condition}}


def wrapped(query):
    return json.dumps({"name": "query", "query": query})


def bad(text):
    with pytest.raises(InputError) as info:
        parse_query(text)
    err = info.value
    assert err.code == "E205"
    assert err.problems and err.problems[0].code == "E205"
    return err.problems[0]


# -- shapes -------------------------------------------------------------------------------------


def test_sdk_shape_simple_email_query_is_lower_cased():
    text = json.dumps(
        {
            "name": "query",
            "query": {
                "type": "simple",
                "name": "query",
                "are": {
                    "condition": {
                        "type": "atomic",
                        "attribute": "base.contacts.email",
                        "operator": "EQUALS",
                        "value": "A@B.it",
                    }
                },
            },
        }
    )
    assert parse_query(text) == Atomic("base.contacts.email", "EQUALS", "a@b.it")


def test_bare_simple_query_without_the_name_wrapper():
    text = json.dumps(simple(atomic("base.firstName", "EQUALS", "Mario")))
    assert parse_query(text) == Atomic("base.firstName", "EQUALS", "Mario")


def test_other_attributes_keep_their_case():
    got = parse_query(wrapped(simple(atomic("base.firstName", "EQUALS", "MaRio"))))
    assert got == Atomic("base.firstName", "EQUALS", "MaRio")


def test_composite_condition_becomes_a_group():
    cond = {
        "type": "composite",
        "conjunction": "OR",
        "conditions": [
            atomic("base.firstName", "EQUALS", "Mario"),
            {
                "type": "composite",
                "conjunction": "and",
                "conditions": [
                    atomic("extended.score", "GTE", 3),
                    atomic("externalId", "IS_NOT_NULL"),
                ],
            },
        ],
    }
    assert parse_query(wrapped(simple(cond))) == Group(
        "or",
        (
            Atomic("base.firstName", "EQUALS", "Mario"),
            Group("and", (Atomic("extended.score", "GTE", 3), Atomic("externalId", "IS_NOT_NULL"))),
        ),
    )


A = simple(atomic("id", "EQUALS", "1"))
B = simple(atomic("id", "EQUALS", "2"))
C = simple(atomic("id", "EQUALS", "3"))
a, b, c = Atomic("id", "EQUALS", "1"), Atomic("id", "EQUALS", "2"), Atomic("id", "EQUALS", "3")


@pytest.mark.parametrize(
    ("conjunction", "expected"),
    [
        ("INTERSECT", Group("and", (a, b, c))),
        ("UNION", Group("or", (a, b, c))),
        ("EXCEPT", Group("and", (a, Group("not", (Group("or", (b, c)),))))),
        ("union", Group("or", (a, b, c))),
    ],
)
def test_combined_queries(conjunction, expected):
    q = {"type": "combined", "name": "q", "conjunction": conjunction, "queries": [A, B, C]}
    assert parse_query(wrapped(q)) == expected


def test_except_with_a_single_query_is_that_query():
    q = {"type": "combined", "conjunction": "EXCEPT", "queries": [A]}
    assert parse_query(wrapped(q)) == Group("and", (a,))


def test_nested_combined_queries():
    inner = {"type": "combined", "conjunction": "UNION", "queries": [B, C]}
    q = {"type": "combined", "conjunction": "INTERSECT", "queries": [A, inner]}
    assert parse_query(wrapped(q)) == Group("and", (a, Group("or", (b, c))))


def test_list_operators_give_tuples():
    got = parse_query(wrapped(simple(atomic("base.contacts.email", "IN", [" X@Y.it ", "z@y.it"]))))
    assert got == Atomic("base.contacts.email", "IN", ("x@y.it", "z@y.it"))


def test_null_operators_drop_the_value():
    got = parse_query(wrapped(simple(atomic("extra", "IS_NULL", "ignored"))))
    assert got == Atomic("extra", "IS_NULL")


def test_tags_take_array_operators():
    got = parse_query(wrapped(simple(atomic("tags.manual", "IN", ["vip"]))))
    assert got == Atomic("tags.manual", "IN", ("vip",))


# -- subscriptions and dates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "expected_operator"),
    [
        ("EQUALS", False, "NOT_EQUALS"),
        ("EQUALS", True, "EQUALS"),
        ("NOT_EQUALS", False, "EQUALS"),
        ("NOT_EQUALS", True, "NOT_EQUALS"),
    ],
)
def test_subscribed_boolean_becomes_a_status_condition(operator, value, expected_operator):
    got = parse_query(wrapped(simple(atomic("base.subscriptions.subscribed", operator, value))))
    assert got == Atomic("base.subscriptions.status", expected_operator, "subscribed")


@pytest.mark.parametrize(("operator", "value"), [("EQUALS", "false"), ("GT", True), ("IN", [True])])
def test_subscribed_needs_equals_and_a_boolean(operator, value):
    p = bad(wrapped(simple(atomic("base.subscriptions.subscribed", operator, value))))
    assert p.path == "query.are.condition"


def test_subscription_status_and_id_are_queryable():
    got = parse_query(wrapped(simple(atomic("base.subscriptions.status", "EQUALS", "cleaned"))))
    assert got == Atomic("base.subscriptions.status", "EQUALS", "cleaned")


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("2017-03-02T12:12:53.074+0000", 1_488_456_773_074),
        ("2017-03-02T12:12:53.074Z", 1_488_456_773_074),
        ("2017-03-02T13:12:53.074+01:00", 1_488_456_773_074),
        ("2017-03-02T00:00:00Z", 1_488_412_800_000),
        (1_488_456_773_074, 1_488_456_773_074),
    ],
)
def test_date_attributes_become_epoch_ms(value, ms):
    assert parse_query(wrapped(simple(atomic("registeredAt", "GT", value)))) == Atomic(
        "registeredAt", "GT", ms
    )


def test_between_dates_become_epoch_ms():
    got = parse_query(
        wrapped(
            simple(atomic("updatedAt", "BETWEEN", ["2017-03-02T00:00:00Z", "2017-03-03T00:00:00.000+0000"]))
        )
    )
    assert got == Atomic("updatedAt", "BETWEEN", (1_488_412_800_000, 1_488_499_200_000))


def test_an_unparseable_date_is_e205_at_the_value():
    p = bad(wrapped(simple(atomic("registeredAt", "GT", "yesterday"))))
    assert p.path == "query.are.condition.value"
    assert "yesterday" in p.message


# -- errors -------------------------------------------------------------------------------------


def test_malformed_json_is_e205():
    p = bad('{"name": "query", "query": ')
    assert p.path == "query"
    assert "JSON" in p.message


@pytest.mark.parametrize("text", ["[]", "null", "3", json.dumps({"name": "q", "query": []})])
def test_a_query_that_is_not_an_object_is_e205(text):
    assert bad(text).path == "query"


def test_unknown_operator_is_e205_at_the_operator():
    p = bad(wrapped(simple(atomic("base.firstName", "LIKE", "Mar%"))))
    assert p.path == "query.are.condition.operator"
    assert "LIKE" in p.message


@pytest.mark.parametrize(
    "attribute", ["base", "base.first-name", "unknown", "base.subscriptions.name", "extra.x", ""]
)
def test_unknown_attribute_is_e205_at_the_attribute(attribute):
    p = bad(wrapped(simple(atomic(attribute, "EQUALS", "x"))))
    assert p.path == "query.are.condition.attribute"


@pytest.mark.parametrize("values", [["2017-03-02T00:00:00Z"], [], [1, 2, 3]])
def test_between_needs_exactly_two_values(values):
    p = bad(wrapped(simple(atomic("registeredAt", "BETWEEN", values))))
    assert p.path == "query.are.condition.value"
    assert "BETWEEN" in p.message


def test_in_needs_a_list():
    p = bad(wrapped(simple(atomic("id", "IN", "1"))))
    assert p.path == "query.are.condition.value"


def test_a_scalar_operator_needs_a_value():
    p = bad(wrapped(simple(atomic("id", "EQUALS"))))
    assert p.path == "query.are.condition.value"


def test_array_attributes_refuse_ordering_operators():
    p = bad(wrapped(simple(atomic("tags.auto", "GT", "a"))))
    assert p.path == "query.are.condition.operator"


def test_did_is_refused():
    p = bad(wrapped({"type": "simple", "name": "q", "did": {"event": {"type": "viewedPage"}}}))
    assert p.path == "query.did"
    assert "did" in p.message


def test_errors_inside_combined_queries_point_at_the_sub_query():
    q = {
        "type": "combined",
        "conjunction": "UNION",
        "queries": [A, simple(atomic("id", "FOO", "1"))],
    }
    assert bad(wrapped(q)).path == "query.queries.1.are.condition.operator"


def test_errors_inside_composite_conditions_point_at_the_condition():
    cond = {"type": "composite", "conjunction": "and", "conditions": [atomic("nope", "EQUALS", 1)]}
    assert bad(wrapped(simple(cond))).path == "query.are.condition.conditions.0.attribute"


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ({"type": "weird"}, "query.type"),
        ({"type": "simple"}, "query.are"),
        ({"type": "combined", "conjunction": "XOR", "queries": [A]}, "query.conjunction"),
        ({"type": "combined", "conjunction": "UNION", "queries": []}, "query.queries"),
        (simple({"type": "composite", "conjunction": "xor", "conditions": []}), None),
        (simple({"type": "composite", "conjunction": "and", "conditions": []}), None),
        (simple({"type": "nested"}), "query.are.condition.type"),
    ],
)
def test_structural_errors(query, path):
    p = bad(wrapped(query))
    if path is not None:
        assert p.path == path
    else:
        assert p.path.startswith("query.are.condition.")


def test_bare_query_error_paths_have_no_leading_dot():
    p = bad(json.dumps(simple(atomic("base.firstName", "LIKE", "x"))))
    assert not p.path.startswith(".")
    assert p.path.endswith("are.condition.operator")


# -- sort ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("registeredAt", Sort("registeredAt", False)),
        ("registeredAt,desc", Sort("registeredAt", True)),
        (" updatedAt , ASC ", Sort("updatedAt", False)),
        ("base.firstName,DESC", Sort("base.firstName", True)),
        ("extended.score,asc", Sort("extended.score", False)),
    ],
)
def test_parse_sort(text, expected):
    assert parse_sort(text) == expected


@pytest.mark.parametrize(
    "text", ["foo", "registeredAt,sideways", "extra", "base", "tags.auto", "base.a b,asc"]
)
def test_parse_sort_refuses_bad_input(text):
    with pytest.raises(InputError) as info:
        parse_sort(text)
    assert info.value.problems[0].path == "sort"
    assert info.value.code == "E200"
