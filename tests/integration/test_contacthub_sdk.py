"""The official Contacthub Python SDK (contacthub-sdk-python), unchanged, against our server."""

from __future__ import annotations

import pytest
from contacthub import Workspace
from contacthub.errors.api_error import APIError
from contacthub.models.customer import Customer
from contacthub.models.query.criterion import Criterion

from tests.conftest import Hub


@pytest.fixture
def node(hub: Hub, live_server: str):  # type: ignore[no-untyped-def]
    workspace = Workspace(
        workspace_id=hub.workspace_id, token=hub.token, base_url=f"{live_server}/hub/v1/workspaces"
    )
    return workspace.get_node(hub.node_id)


def test_sdk_customer_lifecycle(node) -> None:  # type: ignore[no-untyped-def]
    # create
    created = node.add_customer(
        externalId="crm-1",
        base={"firstName": "Ada", "lastName": "Lovelace", "contacts": {"email": "Ada@Example.com"}},
    )
    assert created.id and created.base.contacts.email == "ada@example.com"

    # read back, by id and by external id
    again = node.get_customer(id=created.id)
    assert again.base.firstName == "Ada" and again.externalId == "crm-1"
    assert node.get_customer(external_id="crm-1").id == created.id

    # query by email
    found = node.query(Customer).filter(Customer.base.contacts.email == "ada@example.com").all()
    assert [c.id for c in found] == [created.id]

    # patch through the SDK's mutation tracker
    again.base.firstName = "Augusta Ada"
    again.patch()
    assert node.get_customer(id=created.id).base.firstName == "Augusta Ada"
    assert node.get_customer(id=created.id).base.lastName == "Lovelace"

    # a subscription, a tag and an event
    sub = node.add_subscription(
        created.id, id="newsletter", name="Newsletter", kind="DIGITAL_MESSAGE", subscribed=True
    )
    assert sub.subscribed is True
    assert node.get_customer_subscription(created.id, "newsletter").name == "Newsletter"
    node.add_tag(created.id, "vip")
    assert node.get_customer(id=created.id).tags.manual == ["vip"]
    node.add_event(
        customerId=created.id,
        type="viewedPage",
        context="WEB",
        properties={"url": "https://example.com/"},
    )
    events = node.get_customer(id=created.id).get_events()
    assert [e.type for e in events] == ["viewedPage"]

    # a duplicate is refused with 409 and the existing id …
    with pytest.raises(APIError, match="409") as conflict:
        node.add_customer(base={"contacts": {"email": "ADA@example.com"}})
    assert created.id in str(conflict.value)
    # … which the SDK's force_update turns into a PATCH of that customer
    merged = node.add_customer(
        force_update=True, base={"contacts": {"email": "ada@example.com"}, "title": "Countess"}
    )
    assert merged.id == created.id and merged.base.title == "Countess"

    # delete
    node.delete_customer(created.id)
    with pytest.raises(APIError, match="404"):
        node.get_customer(id=created.id)


def test_sdk_pages_through_a_node(node) -> None:  # type: ignore[no-untyped-def]
    emails = [f"user{i:02d}@example.com" for i in range(23)]
    for email in emails:
        node.add_customer(base={"contacts": {"email": email}})
    first = node.get_customers(size=10)
    assert first.total_elements == 23 and first.total_pages == 3
    seen = [c.base.contacts.email for c in first]
    while first.page_number < first.total_pages - 1:
        first.next_page()
        seen += [c.base.contacts.email for c in first]
    assert sorted(seen) == emails


def test_sdk_query_combinations(node) -> None:  # type: ignore[no-untyped-def]
    node.add_customer(
        base={"firstName": "Mario", "lastName": "Rossi", "contacts": {"email": "m@example.com"}}
    )
    node.add_customer(
        base={"firstName": "Maria", "lastName": "Rossi", "contacts": {"email": "maria@example.com"}}
    )
    node.add_customer(
        base={"firstName": "Mario", "lastName": "Bianchi", "contacts": {"email": "mb@example.com"}}
    )
    rossi_mario = (
        node.query(Customer)
        .filter((Customer.base.lastName == "Rossi") & (Customer.base.firstName == "Mario"))
        .all()
    )
    assert [c.base.contacts.email for c in rossi_mario] == ["m@example.com"]
    either = (
        node.query(Customer)
        .filter((Customer.base.lastName == "Bianchi") | (Customer.base.firstName == "Maria"))
        .all()
    )
    assert sorted(c.base.contacts.email for c in either) == ["maria@example.com", "mb@example.com"]
    in_list = (
        node.query(Customer)
        .filter(Criterion(Customer.base.firstName, Criterion.SIMPLE_OPERATORS.IN, ["Maria", "Nobody"]))
        .all()
    )
    assert [c.base.firstName for c in in_list] == ["Maria"]
    not_mario = node.query(Customer).filter(Customer.base.firstName != "Mario").all()
    assert [c.base.firstName for c in not_mario] == ["Maria"]
