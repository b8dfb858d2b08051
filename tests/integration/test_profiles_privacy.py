"""Privacy of the contacts API against the running profiles service: two organizers share a contact, each has
its own imported values, private tags, notes, preferences, permission and insights, and one has a contact the
other has never met. Neither ever sees the other's data in any response, list, search, filter result or error;
both see what the person stated."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.test_profiles_api import (
    auth,
    created,
    imported,
    interaction,
    new_id,
    profiles_api,
    publish_contact_events,
    rows,
    updated,
    visible,
)
from tests.support.isolation import Isolation
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

A_SECRETS = ("a-secret-tag", "a secret note", "imp-a1", "org-a", "a-topic")
B_SECRETS = ("b-secret-tag", "b secret note", "imp-b1", "org-b", "b-topic", "bob@example.com", "Bobby", "CTO")


def leaks(response: httpx.Response, secrets: tuple[str, ...]) -> list[str]:
    return [secret for secret in secrets if secret.lower() in response.text.lower()]


async def test_two_organizers_sharing_a_contact_see_only_their_own_data(isolation: Isolation) -> None:
    ann, bob = new_id(), new_id()
    a_source, b_source = imported("org-a", "subscribed", import_id="imp-a1"), imported("org-b", import_id="imp-b1")
    b_unsubscribes = imported("org-b", "unsubscribed", import_id="imp-b1")
    org_a, org_b, org_c = auth(isolation, "org-a"), auth(isolation, "org-b"), auth(isolation, "org-c")
    async with profiles_api(isolation) as api:
        b_spelling = updated(ann, 2, b_unsubscribes, title="CTO").model_copy(
            update={"email_original": "ANN@EXAMPLE.COM"}
        )
        await publish_contact_events(isolation, [
            created(ann, "ann@example.com", a_source, first_name="Ann", company="Acme"),
            b_spelling,
            interaction(ann, 3, "org-a", "event_checked_in", event="a-event", hours=10),
            created(bob, "bob@example.com", b_source, first_name="Bobby", company="Acme"),
            interaction(bob, 2, "org-b", "ticket_purchased", event="b-event", hours=20, order_id="o1", tickets=3),
        ])
        await visible(api, org_a, ann)
        await visible(api, org_b, ann, bob)

        async def insights_projected() -> bool:
            active = rows(isolation, "SELECT count(*) FROM organizer_contacts WHERE last_active_at IS NOT NULL")
            return active[0][0] == 2

        await wait_until(insights_projected, timeout=45)
        for headers, contact_id, body in (
            (org_a, ann, {"tags": {"add": ["a-secret-tag"]}, "notes": "a secret note",
                          "preferences": {"topics": ["a-topic"]}}),
            (org_b, ann, {"tags": {"add": ["b-secret-tag"]}, "notes": "b secret note",
                          "preferences": {"topics": ["b-topic"]}, "email_permission": "unsubscribed"}),
            (org_b, bob, {"tags": {"add": ["b-secret-tag"]}, "notes": "b secret note"}),
        ):
            response = await api.patch(f"/v1/contacts/{contact_id}", json=body, headers=headers)
            assert response.status_code == 200, response.text

        # the shared contact, as each organizer sees it
        as_a = await api.get(f"/v1/contacts/{ann}", headers=org_a)
        as_b = await api.get(f"/v1/contacts/{ann}", headers=org_b)
        assert leaks(as_a, B_SECRETS) == [] and leaks(as_b, A_SECRETS) == []
        mine, theirs = as_a.json(), as_b.json()
        assert (mine["first_name"], mine["company"], mine["title"]) == ("Ann", "Acme", None)  # its own import
        assert (theirs["first_name"], theirs["company"], theirs["title"]) == (None, None, "CTO")
        assert (mine["email_original"], theirs["email_original"]) == ("ann@example.com", "ANN@EXAMPLE.COM")
        assert (mine["view_version"], theirs["view_version"]) == (1, 1)
        assert (mine["created_at"], mine["updated_at"]) == ("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z")
        assert (theirs["created_at"], theirs["updated_at"]) == ("2026-03-01T02:00:00Z", "2026-03-01T02:00:00Z")
        assert (mine["relationship"]["tags"], mine["relationship"]["notes"]) == (["a-secret-tag"], "a secret note")
        assert (theirs["relationship"]["tags"], theirs["relationship"]["notes"]) == (["b-secret-tag"], "b secret note")
        assert mine["relationship"]["preferences"]["topics"] == ["a-topic"]
        assert (mine["email_permission"], mine["relationship"]["email_permission"]["changed_by"]) == (
            "subscribed", "imp-a1"
        )
        assert (theirs["email_permission"], theirs["relationship"]["email_permission"]["source"]) == (
            "unsubscribed", "api"
        )
        assert (mine["insights"]["events_attended"], theirs["insights"]["events_attended"]) == (1, 0)
        assert theirs["insights"]["last_active_at"] is None
        own = {"kind": "import", "at": "2026-03-01T00:00:00Z", "yours": True, "organizer_id": "org-a",
               "import_id": "imp-a1"}
        assert mine["field_sources"] == {"email": own, "first_name": own, "company": own}
        assert theirs["field_sources"] == {"title": {
            "kind": "import", "at": "2026-03-01T02:00:00Z", "yours": True, "organizer_id": "org-b",
            "import_id": "imp-b1"}, "email": {
            "kind": "import", "at": "2026-03-01T02:00:00Z", "yours": True, "organizer_id": "org-b",
            "import_id": "imp-b1"}}

        # the contact only org-b knows: identical "not found" for org-a, for a stranger and for no such contact
        missing = new_id()
        answers = [
            await api.get(f"/v1/contacts/{bob}", headers=org_a),
            await api.get(f"/v1/contacts/{bob}", headers=org_c),
            await api.get(f"/v1/contacts/{missing}", headers=org_a),
            await api.patch(f"/v1/contacts/{bob}", json={"notes": "x"}, headers=org_a),
            await api.patch(f"/v1/contacts/{bob}", json={"tags": {"set": []}}, headers={**org_a, "If-Match": '"1"'}),
            await api.patch(f"/v1/contacts/{missing}", json={"notes": "x"}, headers=org_a),
            await api.get(f"/v1/contacts/{bob}/changes", headers=org_a),
            await api.get(f"/v1/contacts/{missing}/changes", headers=org_a),
        ]
        assert {(r.status_code, r.text, r.headers.get("ETag")) for r in answers} == {
            (404, '{"detail":"contact not found"}', None)
        }

        # each organizer's change history of the shared contact holds only its own changes
        for headers, secrets, expected in ((org_a, B_SECRETS, "a secret note"), (org_b, A_SECRETS, "b secret note")):
            history = await api.get(f"/v1/contacts/{ann}/changes", headers=headers)
            assert leaks(history, secrets) == []
            assert [c["changes"]["notes"] for c in history.json()["items"]] == [expected]

        # every list, search and filter as org-a: only ann, only org-a's data
        async def listed(headers: dict[str, str], path: str = "/v1/contacts", **params: Any) -> list[str]:
            response = await api.get(path, params=params, headers=headers)
            assert response.status_code == 200, response.text
            secrets = B_SECRETS if headers is org_a else A_SECRETS
            assert leaks(response, secrets) == [], (params, leaks(response, secrets))
            return [item["contact_id"] for item in response.json()["items"]]

        assert await listed(org_a) == [ann]
        assert await listed(org_a, tag="b-secret-tag") == []
        assert await listed(org_a, q="bob") == [] and await listed(org_a, q="bobby") == []
        assert await listed(org_a, email="bob@example.com") == []
        assert await listed(org_a, company="acme") == [ann]
        assert await listed(org_a, permission="unsubscribed") == []  # ann is unsubscribed for org-b only
        assert await listed(org_a, permission="subscribed") == [ann]
        assert await listed(org_a, min_events_attended=1) == [ann]
        assert await listed(org_a, last_active_after="2026-03-01T15:00:00Z") == []  # bob's ticket, org-b's
        assert await listed(org_a, sort="engagement") == [ann]
        assert await listed(org_a, "/v1/insights/most-engaged") == [ann]

        # and as org-b: both of its contacts, none of org-a's data
        assert sorted(await listed(org_b)) == sorted([ann, bob])
        assert await listed(org_b, tag="a-secret-tag") == []
        assert await listed(org_b, tag="b-secret-tag", company="ACME") == [bob]  # ann's company is org-a's
        assert await listed(org_b, q="ann") == [ann] and await listed(org_b, q="Ann") == [ann]  # by email only
        assert await listed(org_b, min_events_attended=1) == []  # ann's check-in was at org-a's event
        assert await listed(org_b, permission="subscribed") == []
        assert await listed(org_b, "/v1/insights/most-engaged") == [bob]

        # a stranger sees nothing at all
        for params in ({}, {"q": "ann"}, {"email": "ann@example.com"}, {"tag": "a-secret-tag"}, {"company": "acme"},
                       {"sort": "engagement"}):
            response = await api.get("/v1/contacts", params=params, headers=org_c)
            assert response.json() == {"items": [], "next_cursor": None}
        assert (await api.get("/v1/insights/most-engaged", headers=org_c)).json() == {"items": []}

    # org-a's refused changes to bob left no trace; each organizer's changes touched only its own row
    assert rows(isolation, "SELECT organizer_id, contact_id FROM organizer_contact_changes ORDER BY sequence") == [
        ("org-a", ann), ("org-b", ann), ("org-b", bob)
    ]
    stored = rows(isolation, "SELECT organizer_id, contact_id, tags, notes FROM organizer_contacts ORDER BY 1, 2")
    assert sorted(stored) == sorted([
        ("org-a", ann, ["a-secret-tag"], "a secret note"),
        ("org-b", ann, ["b-secret-tag"], "b secret note"),
        ("org-b", bob, ["b-secret-tag"], "b secret note"),
    ])
    assert json.dumps(stored, default=str).count("org-a") == 1
