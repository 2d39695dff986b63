"""The plain-record fast path (hub.document.parse_plain) against the full JSON-schema path.

For any body, the fast path either declines (None) or returns exactly the document that
validation by the compiled schema validator plus normalisation returns; so parse_customer,
which takes the full path whenever the fast one declines, accepts and rejects exactly what
the full validator does.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contactsync.errors import InputError
from contactsync.hub.document import (
    _BASE_OBJECTS,
    _BASE_STRINGS,
    _TAG_LISTS,
    _TOP_STRINGS,
    _full_check,
    _normalise,
    parse_customer,
    parse_plain,
)
from contactsync.hub.schema import EMPTY_EXTENDED_SCHEMA, SECTION_LIMIT, customer_validator

PROPS = settings(database=None, max_examples=1500, deadline=None)

STRICT_EXTENDED = {  # a workspace schema that refuses everything in `extended`, even null
    "type": "object",
    "additionalProperties": False,
    "properties": {"score": {"type": "integer"}},
    "required": ["score"],
}

# strings that matter: "null" inside, newline + "ull" (orjson writes \null), surrogates,
# limits of maxLength, e-mail forms
TRICKY_VALUES = [
    "",
    "null",
    "Null",
    "\null",
    "x\nully",
    "nu",
    "ll",
    "\ud800",
    "é",
    "\x00",
    "a\\null",
    "x" * 254,
    "x" * 255,
    "x" * 256,
    "a@b.it",
    " A@B.IT ",
    "broken",
    "a@b",
    f"{'a' * 243}@example.com",
    f"{'a' * 244}@example.com",
    "x" * (SECTION_LIMIT // 6),
    "x" * SECTION_LIMIT,
]
TRICKY = st.sampled_from(TRICKY_VALUES)
STRINGS = st.text(max_size=12) | TRICKY
SCALARS = (
    st.none() | STRINGS | st.booleans() | st.integers(-3, 3) | st.just(2**70) | st.floats(allow_nan=False)
)
OTHER_KEYS = st.sampled_from(
    ["dob", "subscriptions", "extended", "consents", "geo", "otherContacts", "pictureUrl", "x"]
)


def _object(names: frozenset[str] | set[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.sampled_from(sorted(names)) | OTHER_KEYS
    return st.dictionaries(keys, values, max_size=5)


def _nearly(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``values``, sometimes a value of another type."""
    return st.one_of(values, values, values, SCALARS, st.lists(STRINGS, max_size=2))


INNER = st.one_of(
    *(_nearly(_object(names, _nearly(st.none() | STRINGS))) for names in _BASE_OBJECTS.values())
)
BASE = st.dictionaries(
    st.sampled_from(sorted(_BASE_STRINGS | set(_BASE_OBJECTS))) | OTHER_KEYS,
    _nearly(st.none() | STRINGS) | INNER,
    max_size=6,
)
TAGS = _object(_TAG_LISTS, _nearly(st.none() | st.lists(_nearly(STRINGS), max_size=3)))
BODIES = st.dictionaries(
    st.sampled_from(sorted(_TOP_STRINGS | {"base", "tags", "enabled"})) | OTHER_KEYS,
    _nearly(st.none() | STRINGS | st.booleans()) | _nearly(BASE) | _nearly(TAGS),
    max_size=7,
) | _nearly(BASE)

# plain bodies the fast path must take (so the comparison above is not vacuous)
PLAIN_TEXT = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters="\\"), max_size=10
)
PLAIN_EMAIL = st.from_regex(r"[a-z0-9.+]{1,10}@[a-z]{1,8}\.(it|com)", fullmatch=True)
PLAIN = st.fixed_dictionaries(
    {},
    optional={
        "externalId": st.none() | PLAIN_TEXT,
        "enabled": st.none() | st.booleans(),
        "extra": st.none() | PLAIN_TEXT,
        "nodeId": PLAIN_TEXT,
        "tags": st.none() | st.fixed_dictionaries({}, optional={"manual": st.lists(PLAIN_TEXT, max_size=3)}),
        "base": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "firstName": st.none() | PLAIN_TEXT,
                "lastName": PLAIN_TEXT,
                "contacts": st.none()
                | st.fixed_dictionaries(
                    {}, optional={"email": st.none() | PLAIN_EMAIL, "mobilePhone": PLAIN_TEXT}
                ),
                "address": st.fixed_dictionaries({}, optional={"city": st.none() | PLAIN_TEXT}),
            },
        ),
    },
)


def full_path(body: Any, extended: dict[str, Any]) -> Any:
    """The document by the compiled validator and _normalise, or the InputError's problems."""
    try:
        return _normalise(body, _full_check(body, customer_validator(extended)))
    except InputError as e:
        return ("error", [(p.path, p.code, p.message) for p in e.problems])


def outcome(body: Any, extended: dict[str, Any]) -> Any:
    """What parse_customer answers, in the form of full_path."""
    try:
        return parse_customer(body, extended)
    except InputError as e:
        return ("error", [(p.path, p.code, p.message) for p in e.problems])


def assert_same(fast: Any, full: Any) -> None:
    assert full == fast
    # the stored bytes too, key order included
    assert orjson.dumps(full.data) == orjson.dumps(fast.data)
    assert full.content_hash() == fast.content_hash()


@PROPS
@given(body=BODIES, extended=st.sampled_from([EMPTY_EXTENDED_SCHEMA, STRICT_EXTENDED]))
def test_fast_path_agrees_with_the_full_validator(body: Any, extended: dict[str, Any]) -> None:
    fast = parse_plain(body)
    full = full_path(body, extended)
    if fast is not None:
        assert_same(fast, full)
    assert outcome(body, extended) == full


@PROPS
@given(body=PLAIN)
def test_fast_path_takes_plain_bodies(body: Any) -> None:
    fast = parse_plain(body)
    assert fast is not None
    assert_same(fast, full_path(body, STRICT_EXTENDED))


class Name(str):
    """A str subclass: fastjsonschema takes it as a key, orjson does not."""


ALL_NAMES = sorted(
    _TOP_STRINGS | {"base", "tags", "enabled"} | _BASE_STRINGS | _TAG_LISTS | set(_BASE_OBJECTS)
)
ALL_NAMES += sorted({n for names in _BASE_OBJECTS.values() for n in names})
KEYS = st.sampled_from(ALL_NAMES) | OTHER_KEYS | st.sampled_from(ALL_NAMES).map(Name) | st.integers(0, 1)
VALUES = (
    SCALARS
    | st.lists(SCALARS, max_size=2)
    | st.dictionaries(st.sampled_from(ALL_NAMES) | OTHER_KEYS, st.none() | STRINGS, max_size=2)
    | st.tuples(STRINGS)
)


def _containers(value: Any) -> list[Any]:
    found = []
    if isinstance(value, dict):
        found.append(value)
        for v in value.values():
            found += _containers(v)
    elif isinstance(value, list):
        found.append(value)
        for v in value:
            found += _containers(v)
    return found


@pytest.mark.slow  # a fuzz test: hundreds of generated bodies
@PROPS
@given(body=PLAIN, data=st.data())
def test_fast_path_agrees_one_or_two_changes_away_from_a_plain_body(body: Any, data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(1, 2))):
        target = data.draw(st.sampled_from(_containers(body)))
        how = data.draw(st.sampled_from(["replace", "rename", "add"]))
        if isinstance(target, dict):
            if how == "add" or not target:
                target[data.draw(KEYS)] = data.draw(VALUES | TRICKY)
            elif how == "replace":
                target[data.draw(st.sampled_from(list(target)))] = data.draw(TRICKY | VALUES)
            else:
                key = data.draw(st.sampled_from(list(target)))
                target[data.draw(st.just(Name(key)) | KEYS)] = target.pop(key)
        elif target and how != "add":
            target[data.draw(st.integers(0, len(target) - 1))] = data.draw(TRICKY | VALUES)
        else:
            target.append(data.draw(TRICKY | VALUES))
    fast = parse_plain(body)
    full = full_path(body, STRICT_EXTENDED)
    if fast is not None:
        assert_same(fast, full)


def _full_plain_body() -> dict[str, Any]:
    """A plain body with every field the fast path knows."""
    base: dict[str, Any] = {name: f"{name}-value" for name in sorted(_BASE_STRINGS)}
    for obj, names in _BASE_OBJECTS.items():
        base[obj] = {name: f"{obj}-{name}" for name in sorted(names)}
    base["contacts"]["email"] = "Someone@Example.com"
    body: dict[str, Any] = {name: f"{name}-value" for name in sorted(_TOP_STRINGS)}
    return {**body, "enabled": False, "base": base, "tags": {"auto": ["a"], "manual": ["m", "n"]}}


def _slots(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value in ``value`` (dict keys and list positions)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    found = []
    for key, item in items:
        found.append((*path, key))
        found += _slots(item, (*path, key))
    return found


EVERY_KIND = [*TRICKY_VALUES, None, True, 0, 1.5, 2**70, [], ["x"], {}, {"x": "y"}, ("t",)]


@pytest.mark.parametrize("empty", ["", "credential"])  # an empty object goes when there is a null
def test_fast_path_agrees_for_every_field_and_every_tricky_value(empty: str) -> None:
    template = _full_plain_body()
    if empty:
        template["base"][empty] = {}
    fast = parse_plain(template)
    assert fast is not None
    assert_same(fast, full_path(template, STRICT_EXTENDED))
    taken = 0
    for path in _slots(template):
        for value in EVERY_KIND:
            body = copy.deepcopy(template)
            *parents, last = path
            target = body
            for part in parents:
                target = target[part]
            target[last] = value
            fast = parse_plain(body)
            if fast is not None:
                taken += 1
                assert_same(fast, full_path(body, STRICT_EXTENDED))
            else:
                assert outcome(body, STRICT_EXTENDED) == full_path(body, STRICT_EXTENDED)
    assert taken > 100


@pytest.mark.parametrize(
    "body",
    [
        {Name("externalId"): "e"},
        {"base": {Name("firstName"): "Ada"}},
        {"base": {"contacts": {Name("email"): "a@b.it"}}},
        {"tags": {Name("manual"): ["x"]}},
        {"base": {"contacts": {"email": f"{'a' * 243}@example.com"}}},  # 255 > maxLength 254
        {"tags": {"manual": ["x", 3]}},
        {"base": {"nickname": None}},
    ],
)
def test_fast_path_declines(body: dict[str, Any]) -> None:
    assert parse_plain(body) is None
    with pytest.raises(InputError):
        parse_customer(body, EMPTY_EXTENDED_SCHEMA)


def test_fast_path_takes_the_longest_email() -> None:
    body = {"base": {"contacts": {"email": f"{'a' * 242}@example.com"}}}  # 254
    fast = parse_plain(body)
    assert fast is not None
    assert_same(fast, full_path(body, EMPTY_EXTENDED_SCHEMA))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"base": {"firstName": "\ud800"}}, "E203"),  # orjson refuses lone surrogates
        ({"externalId": "x" * 256}, "E203"),
        ({"base": {"contacts": {"email": "x" * 255}}}, "E203"),
        ({"base": {"contacts": {"email": "broken"}}}, "E201"),
        ({"base": {"firstName": "x" * SECTION_LIMIT}}, "E204"),
        ({"base": {"firstName": 3}}, "E203"),
        ({"base": {"nickname": "x"}}, "E202"),
        ({"nodeId": None}, "E203"),
    ],
)
def test_fast_path_leaves_bad_bodies_to_the_full_validator(body: dict[str, Any], code: str) -> None:
    assert parse_plain(body) is None
    with pytest.raises(InputError) as info:
        parse_customer(body, EMPTY_EXTENDED_SCHEMA)
    assert info.value.problems[0].code == code


def test_nulls_and_the_word_null_prune_as_the_full_path_does() -> None:
    for body in (
        {"base": {"address": {}, "contacts": {"email": None}}},
        {"base": {"address": {}, "firstName": "nullable"}},
        {"base": {"address": {}, "firstName": "a\nully"}},
        {"base": {"address": {}}, "tags": None},
        {"base": None, "tags": {"auto": None}},
        {"base": {"address": {}}},
    ):
        fast = parse_plain(body)
        assert fast is not None
        assert_same(fast, full_path(body, EMPTY_EXTENDED_SCHEMA))
