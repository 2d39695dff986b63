"""Customer documents (hub.document): validation, normalisation, merge patch, key and hash."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contactsync.errors import InputError
from contactsync.hub.document import (
    KEY_SEPARATOR,
    CustomerDoc,
    match_key,
    merge_patch,
    parse_customer,
    prune_nulls,
)
from contactsync.hub.schema import EMPTY_EXTENDED_SCHEMA

PROPS = settings(database=None, max_examples=200, deadline=None)

SCORE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"score": {"type": ["integer", "null"]}},
}


def parse(body, schema=EMPTY_EXTENDED_SCHEMA) -> CustomerDoc:
    return parse_customer(body, schema)


def problem(body, schema=EMPTY_EXTENDED_SCHEMA):
    with pytest.raises(InputError) as info:
        parse_customer(body, schema)
    err = info.value
    assert err.problems, "an InputError must list its problems"
    assert err.code == err.problems[0].code
    return err.problems[0]


# -- validation and normalisation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("  Mario.Rossi@Example.COM ", "mario.rossi@example.com"),
        ("a@b.it", "a@b.it"),
        ("\tX+tag@Sub.Example.org\n", "x+tag@sub.example.org"),
    ],
)
def test_email_is_trimmed_and_lower_cased(raw, stored):
    doc = parse({"base": {"firstName": "Mario", "contacts": {"email": raw, "phone": "1"}}})
    assert doc.data["base"]["contacts"] == {"email": stored, "phone": "1"}
    assert doc.data["base"]["firstName"] == "Mario"


@pytest.mark.parametrize("email", ["nope", "", "a@b", "a b@c.it", "a@-b.it", "@b.it", "a@@b.it"])
def test_invalid_email_is_e201(email):
    p = problem({"base": {"contacts": {"email": email}}})
    assert p.code == "E201"
    assert p.path == "base.contacts.email"


def test_unknown_base_property_is_e202_with_its_path():
    p = problem({"base": {"firstName": "Mario", "foo": 1}})
    assert p.code == "E202"
    assert p.path == "base.foo"


def test_unknown_nested_base_property_is_e202_with_its_path():
    p = problem({"base": {"contacts": {"pager": "123"}}})
    assert p.code == "E202"
    assert p.path == "base.contacts.pager"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"base": {"firstName": 3}}, "base.firstName"),
        ({"base": {"contacts": {"phone": 3}}}, "base.contacts.phone"),
        ({"enabled": "yes"}, "enabled"),
        ({"tags": {"manual": [1]}}, "tags.manual.0"),
    ],
)
def test_wrong_type_is_e203_with_the_field_path(body, path):
    p = problem(body)
    assert p.code == "E203"
    assert p.path == path


def test_unknown_extended_property_with_the_empty_schema_is_e202():
    p = problem({"extended": {"score": 3}})
    assert p.code == "E202"
    assert p.path == "extended.score"


def test_a_declared_extended_property_is_accepted():
    doc = parse({"extended": {"score": 3}}, SCORE_SCHEMA)
    assert doc.data["extended"] == {"score": 3}


def test_a_declared_extended_property_rejects_the_wrong_type():
    p = problem({"extended": {"score": "three"}}, SCORE_SCHEMA)
    assert p.code == "E203"
    assert p.path == "extended.score"


@pytest.mark.parametrize("section", ["base", "extended"])
def test_a_section_over_64_kb_is_e204(section):
    big = "x" * (64 * 1024)
    body = {"base": {"firstName": big}} if section == "base" else {"extended": {"score": big}}
    p = problem(body, SCORE_SCHEMA)
    assert p.code == "E204"
    assert p.path == section


def test_a_section_just_under_64_kb_is_not_e204():
    doc = parse({"base": {"firstName": "x" * (60 * 1024)}})
    assert len(doc.data["base"]["firstName"]) == 60 * 1024


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(InputError):
        parse_customer([{"base": {}}], EMPTY_EXTENDED_SCHEMA)


def test_nulls_are_pruned():
    doc = parse(
        {
            "externalId": "ext-1",
            "base": {
                "firstName": None,
                "lastName": "Rossi",
                "contacts": {"email": None, "phone": None},
                "address": {"city": "Milano", "zip": None},
            },
            "extended": None,
            "extra": None,
            "consents": None,
        }
    )
    assert doc.data == {
        "base": {"lastName": "Rossi", "address": {"city": "Milano"}},
        "tags": {"auto": [], "manual": []},
    }
    assert doc.external_id == "ext-1"


def test_enabled_defaults_to_true_and_false_is_kept():
    assert parse({}).enabled is True
    assert parse({"enabled": None}).enabled is True
    assert parse({"enabled": False}).enabled is False


def test_tags_get_both_lists():
    doc = parse({"tags": {"manual": ["vip"]}})
    assert doc.data["tags"] == {"auto": [], "manual": ["vip"]}


def test_prune_nulls_keeps_list_items_and_drops_emptied_objects():
    assert prune_nulls({"a": None, "b": {"c": None}, "d": [None, {"e": None}, 1], "f": 0}) == {
        "d": [None, {}, 1],
        "f": 0,
    }


def test_subscriptions_travel_beside_the_data():
    subs = [{"id": "news", "status": "subscribed"}, {"id": "promo", "subscribed": False}]
    doc = parse({"base": {"firstName": "Mario", "subscriptions": subs}})
    assert doc.subscriptions == subs
    assert "subscriptions" not in doc.data["base"]
    assert doc.data["base"] == {"firstName": "Mario"}


def test_subscriptions_absent_is_none_and_empty_is_empty():
    assert parse({"base": {"firstName": "Mario"}}).subscriptions is None
    assert parse({"base": {"subscriptions": []}}).subscriptions == []


def test_duplicate_subscription_ids_are_refused():
    p = problem({"base": {"subscriptions": [{"id": "a"}, {"id": "b"}, {"id": "a"}]}})
    assert p.path == "base.subscriptions.2.id"
    assert "a" in p.message


def test_a_subscription_without_id_is_refused():
    p = problem({"base": {"subscriptions": [{"status": "subscribed"}]}})
    assert p.path.startswith("base.subscriptions")


# -- merge patch --------------------------------------------------------------------------------


def test_merge_patch_null_removes_dicts_merge_lists_replace():
    target = {
        "base": {"firstName": "Mario", "lastName": "Rossi", "contacts": {"email": "a@b.it"}},
        "tags": {"manual": ["a", "b"], "auto": ["x"]},
        "extra": "keep",
    }
    patch = {
        "base": {"lastName": None, "contacts": {"phone": "1"}},
        "tags": {"manual": ["c"]},
        "extended": {"score": 1},
    }
    assert merge_patch(target, patch) == {
        "base": {"firstName": "Mario", "contacts": {"email": "a@b.it", "phone": "1"}},
        "tags": {"manual": ["c"], "auto": ["x"]},
        "extra": "keep",
        "extended": {"score": 1},
    }


def test_merge_patch_scalar_replaces_object_and_object_replaces_scalar():
    assert merge_patch({"a": {"b": 1}}, {"a": 2}) == {"a": 2}
    assert merge_patch({"a": 2}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_merge_patch_null_on_a_missing_key_is_a_no_op():
    assert merge_patch({"a": 1}, {"b": None}) == {"a": 1}


def test_merge_patch_does_not_mutate_its_inputs():
    target = {"base": {"contacts": {"email": "a@b.it"}}, "tags": {"manual": ["a"]}}
    patch = {"base": {"contacts": {"email": None}}, "tags": {"manual": ["b"]}}
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    merge_patch(target, patch)
    assert target == target_before
    assert patch == patch_before


def test_merge_patch_drops_nulls_inside_a_new_object_like_rfc_7396():
    assert merge_patch({}, {"extended": {"score": None, "level": 2}}) == {"extended": {"level": 2}}


# orjson (which content_json uses) serialises integers up to 64 bits
json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5)
json_docs = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=3), json_docs, max_size=4)


@PROPS
@given(target=json_objects)
def test_merge_patch_with_an_empty_patch_is_identity(target):
    assert merge_patch(target, {}) == target


@PROPS
@given(target=json_objects, patch=json_objects)
def test_merge_patch_top_level_keys(target, patch):
    out = merge_patch(target, patch)
    for key, value in patch.items():
        if value is None:
            assert key not in out
        elif not isinstance(value, dict):
            assert out[key] == value
    for key in set(target) - set(patch):
        assert out[key] == target[key]


# -- matching key -------------------------------------------------------------------------------


def doc_with(email=None, external_id=None, first_name=None) -> CustomerDoc:
    base: dict = {}
    if email is not None:
        base["contacts"] = {"email": email}
    if first_name is not None:
        base["firstName"] = first_name
    return CustomerDoc(external_id, True, {"base": base}, None)


def test_match_key_is_trimmed_and_lower_cased():
    doc = doc_with(email=" A@B.it ")
    assert match_key(doc, ["base.contacts.email"], case_sensitive=False) == "a@b.it"


def test_match_key_case_sensitive_keeps_case_but_trims():
    doc = doc_with(first_name="  Mario ")
    assert match_key(doc, ["base.firstName"], case_sensitive=True) == "Mario"


def test_match_key_joins_several_properties():
    doc = doc_with(email="a@b.it", external_id="EXT-1")
    key = match_key(doc, ["externalId", "base.contacts.email"], case_sensitive=False)
    assert key == f"ext-1{KEY_SEPARATOR}a@b.it"


@pytest.mark.parametrize(
    "doc",
    [
        doc_with(external_id="EXT-1"),
        doc_with(email="", external_id="EXT-1"),
        CustomerDoc("EXT-1", True, {"base": {"contacts": "not an object"}}, None),
        CustomerDoc("EXT-1", True, {}, None),
    ],
)
def test_match_key_is_none_when_a_property_is_missing(doc):
    assert match_key(doc, ["externalId", "base.contacts.email"], case_sensitive=False) is None


def test_match_key_on_external_id_alone():
    assert match_key(doc_with(external_id="X"), ["externalId"], case_sensitive=True) == "X"
    assert match_key(doc_with(email="a@b.it"), ["externalId"], case_sensitive=True) is None


# -- content hash -------------------------------------------------------------------------------


def test_content_hash_ignores_key_order():
    a = parse(
        {
            "externalId": "e",
            "base": {"firstName": "Mario", "contacts": {"email": "a@b.it", "phone": "1"}},
            "tags": {"manual": ["x"], "auto": []},
        }
    )
    b = parse(
        {
            "tags": {"auto": [], "manual": ["x"]},
            "base": {"contacts": {"phone": "1", "email": "A@B.IT"}, "firstName": "Mario"},
            "externalId": "e",
        }
    )
    assert a.content_hash() == b.content_hash()


@pytest.mark.parametrize(
    "change",
    [
        {"base": {"firstName": "Maria", "contacts": {"email": "a@b.it"}}},
        {"base": {"firstName": "Mario", "contacts": {"email": "c@b.it"}}},
        {"tags": {"manual": ["y"]}},
        {"externalId": "other"},
        {"enabled": False},
    ],
)
def test_content_hash_changes_when_a_value_changes(change):
    body = {"externalId": "e", "base": {"firstName": "Mario", "contacts": {"email": "a@b.it"}}}
    assert parse(body).content_hash() != parse({**body, **change}).content_hash()


def test_content_hash_accepts_precomputed_json():
    doc = parse({"base": {"firstName": "Mario"}})
    assert doc.content_hash(doc.content_json()) == doc.content_hash()


def reverse_keys(value):
    if isinstance(value, dict):
        return {k: reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reverse_keys(v) for v in value]
    return value


@PROPS
@given(data=json_objects, external_id=st.none() | st.text(max_size=5), enabled=st.booleans())
def test_content_hash_is_independent_of_key_order(data, external_id, enabled):
    a = CustomerDoc(external_id, enabled, data, None)
    b = CustomerDoc(external_id, enabled, reverse_keys(data), None)
    assert a.content_hash() == b.content_hash()
    assert len(a.content_hash()) == 32


def test_as_body_round_trips_through_parse():
    doc = parse({"externalId": "e", "enabled": False, "base": {"firstName": "Mario"}})
    again = parse(doc.as_body())
    assert again.data == doc.data
    assert again.content_hash() == doc.content_hash()
