"""The sandbox's records as Planhat keeps them (issue 13, items 2, 3 and 6): endusers keyed by
e-mail and placed by company or domain, tickets kept as conversations, and the timestamps and
computed fields Planhat writes itself. Each test names its source, or says "assumed"
(sources: shared/reference/planhat-fidelity-audit.md, rows 12-21)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from tests.planhat.sandbox_http import (
    Record,
    company_without_source_id,
    create,
    license_,
    listing,
    parse_time,
)


def upsert(api: httpx.Client, model: str, payload: object) -> Record:
    response = api.put(f"/{model}", json=payload)
    assert response.status_code == 200, response.text
    answer: Record = response.json()
    return answer


def endusers_with(api: httpx.Client, email: str) -> list[Record]:
    return [e for e in listing(api, "endusers") if e["email"].lower() == email.lower()]


# --- endusers (item 2) -------------------------------------------------------------------


def test_the_same_email_sent_twice_updates_one_enduser(api: httpx.Client) -> None:
    # support.planhat.com/en/articles/8146372: e-mail is "Keyable (if unique)"
    company_without_source_id(api, "acme")
    first = upsert(api, "endusers", [{"email": "ada@acme.com", "companyId": "extid-acme"}])

    again = upsert(api, "endusers", [{"email": "Ada@ACME.com", "lastName": "Lovelace"}])

    assert (first["created"], again["created"], again["updated"]) == (1, 0, 1)
    [ada] = endusers_with(api, "ada@acme.com")
    assert (ada["_id"], ada["lastName"]) == (first["upsertedIds"][0], "Lovelace")


def test_an_email_two_endusers_share_is_no_key(api: httpx.Client) -> None:
    # support.planhat.com/en/articles/8146372: a keyable only "if unique"; uniqueness is
    # not enforced, so a single create may repeat an e-mail. That the upsert then creates
    # another is assumed.
    company_without_source_id(api, "acme")
    for _ in range(2):
        create(api, "endusers", {"email": "ada@acme.com", "companyId": "extid-acme"})

    answer = upsert(api, "endusers", [{"email": "ada@acme.com", "companyId": "extid-acme"}])

    assert (answer["created"], answer["updated"]) == (1, 0)
    assert len(endusers_with(api, "ada@acme.com")) == 3


@pytest.mark.parametrize("key", ["sourceId", "externalId"])
def test_an_enduser_with_a_key_of_its_own_is_another_enduser_with_that_email(
    api: httpx.Client, key: str
) -> None:
    # support.planhat.com/en/articles/8146372: endusers may share an e-mail "provided
    # externalId or sourceId is unique"; that the e-mail is then not tried is assumed
    company_without_source_id(api, "acme")
    create(api, "endusers", {key: "u1", "email": "ada@acme.com", "companyId": "extid-acme"})

    answer = upsert(
        api, "endusers", [{key: "u2", "email": "ada@acme.com", "companyId": "extid-acme"}]
    )

    assert (answer["created"], answer["updated"]) == (1, 0)
    assert sorted(e[key] for e in endusers_with(api, "ada@acme.com")) == ["u1", "u2"]


def test_an_enduser_is_placed_by_company_external_id(api: httpx.Client) -> None:
    # help.planhat.com/en/articles/9586991: "send the corresponding companyId or
    # companyExternalId"
    acme = company_without_source_id(api, "acme")

    upsert(api, "endusers", [{"email": "ada@elsewhere.com", "companyExternalId": "acme"}])

    [ada] = listing(api, "endusers")
    assert ada["companyId"] == acme["_id"]


def test_an_unknown_company_external_id_falls_back_to_the_domain_then_to_silence(
    api: httpx.Client,
) -> None:
    # help.planhat.com/en/articles/9586991: "we still try to match based on email domain,
    # and if that doesn't work either, then it is ignored"
    acme = company_without_source_id(api, "acme", domains=["acme.com"])
    items = [
        {"email": "ada@acme.com", "companyExternalId": "nobody"},
        {"email": "kim@elsewhere.com", "companyExternalId": "nobody"},
    ]

    answer = upsert(api, "endusers", items)

    assert (answer["created"], answer["createdErrors"]) == (1, [])
    [ada] = listing(api, "endusers")
    assert (ada["email"], ada["companyId"]) == ("ada@acme.com", acme["_id"])


def test_a_companys_domains_fill_in_from_its_endusers_emails(api: httpx.Client) -> None:
    # planhat.com/developers/api/company: domains, "based on endusers emails domains";
    # assumed: added once, lower case, after the domains the company was sent
    company_without_source_id(api, "acme", domains=["acme.com"])
    items = [
        {"email": "ada@Acme.io", "companyId": "extid-acme"},
        {"email": "kim@acme.io", "companyId": "extid-acme"},
        {"email": "lee@acme.com", "companyId": "extid-acme"},
    ]

    upsert(api, "endusers", items)

    assert api.get("/companies/extid-acme").json()["domains"] == ["acme.com", "acme.io"]
    # and a new enduser of that domain is placed there
    upsert(api, "endusers", [{"email": "sam@acme.io"}])
    assert len(listing(api, "endusers", companyId="extid-acme")) == 4


def test_a_single_create_of_an_enduser_no_company_takes_is_refused(api: httpx.Client) -> None:
    # assumed: the sources describe only the silence of a bulk upsert; a POST answers 400
    company_without_source_id(api, "acme", domains=["acme.com"])

    response = api.post("/endusers", json={"email": "kim@elsewhere.com"})

    assert response.status_code == 400
    assert "companyId" in response.text
    assert listing(api, "endusers") == []


# --- tickets (item 3) --------------------------------------------------------------------


def ticket(source_id: str, **fields: object) -> Record:
    return {"sourceId": source_id, "email": "ada@acme.com", "title": "It broke", **fields}


def test_a_ticket_is_a_conversation_of_type_ticket(api: httpx.Client) -> None:
    # planhat.com/developers/api/ticket (audit row 15): tickets are conversations, their
    # type set by Planhat; a type sent is overwritten: assumed
    company_without_source_id(api, "acme")
    note = create(api, "conversations", {"type": "note", "companyId": "extid-acme"})

    [ticket_id] = upsert(api, "tickets", [ticket("t1", companyId="extid-acme", type="bug")])[
        "upsertedIds"
    ]

    conversation = api.get(f"/conversations/{ticket_id}").json()
    assert (conversation["type"], conversation["title"]) == ("ticket", "It broke")
    assert {c["_id"] for c in listing(api, "conversations")} == {note["_id"], ticket_id}
    assert [t["_id"] for t in listing(api, "tickets")] == [ticket_id]
    assert api.delete(f"/tickets/{note['_id']}").status_code == 404  # a note is no ticket


def test_put_tickets_takes_one_object_and_updates_by_source_id(api: httpx.Client) -> None:
    # planhat/docs source/includes/_tickets.md: "The PUT body can contain either a single
    # JSON object, or an array"; "sourceId is used to determine if this is an update or
    # create operation"
    company_without_source_id(api, "acme")

    first = upsert(api, "tickets", ticket("t1", companyId="extid-acme"))
    again = upsert(api, "tickets", ticket("t1", status="resolved"))

    assert (first["created"], again["updated"]) == (1, 1)
    [listed] = listing(api, "tickets")
    assert (listed["_id"], listed["status"]) == (first["upsertedIds"][0], "resolved")


def test_a_ticket_shares_its_keys_with_the_conversations(api: httpx.Client) -> None:
    # assumed: a ticket is a conversation, so a sourceId is unique across both, and a ticket
    # upsert naming a note's sourceId turns that note into the ticket
    company_without_source_id(api, "acme")
    note = create(
        api, "conversations", {"type": "note", "sourceId": "s1", "companyId": "extid-acme"}
    )

    answer = upsert(api, "tickets", [ticket("s1")])

    assert (answer["created"], answer["updated"]) == (0, 1)
    assert [t["_id"] for t in listing(api, "tickets")] == [note["_id"]]


def test_a_ticket_keeps_its_sources_created_at(api: httpx.Client) -> None:
    # planhat/docs source/includes/_tickets.md: createdAt is a ticket property its source
    # sends (the example sends 2016-10-17); updatedAt stays Planhat's own: assumed
    company_without_source_id(api, "acme")
    sent = "2016-10-17T14:00:00.000Z"

    upsert(api, "tickets", ticket("t1", companyId="extid-acme", createdAt=sent,
                                  updatedAt="2016-10-17T14:02:00.000Z"))  # fmt: skip

    [listed] = listing(api, "tickets")
    assert listed["createdAt"] == sent
    assert parse_time(listed["updatedAt"]).year >= 2026


def test_a_ticket_creates_its_enduser_on_its_company(api: httpx.Client) -> None:
    # planhat/docs source/includes/_tickets.md: "if the email of a ticket doesn't match any
    # user in Planhat, but there is enough information to create a new user, then Planhat
    # will create a new user, link it to the corresponding customer"
    acme = company_without_source_id(api, "acme")

    upsert(api, "tickets", [ticket("t1", companyExternalId="acme")])
    upsert(api, "tickets", [ticket("t2", companyExternalId="acme")])

    [ada] = listing(api, "endusers")
    assert (ada["email"], ada["companyId"]) == ("ada@acme.com", acme["_id"])
    assert {t["companyId"] for t in listing(api, "tickets")} == {acme["_id"]}


def test_a_ticket_without_company_takes_its_endusers(api: httpx.Client) -> None:
    # planhat/docs source/includes/_tickets.md (companyExternalId helps "if there is no
    # external user related to the ticket"): a ticket whose e-mail names a user goes to
    # that user's company. The e-mail's domain next, as for endusers: assumed.
    acme = company_without_source_id(api, "acme")
    globex = company_without_source_id(api, "globex", domains=["globex.com"])
    create(api, "endusers", {"email": "ada@acme.com", "companyId": "extid-acme"})

    upsert(api, "tickets", [ticket("t1"), ticket("t2", email="kim@globex.com")])

    assert {t["email"]: t["companyId"] for t in listing(api, "tickets")} == {
        "ada@acme.com": acme["_id"],
        "kim@globex.com": globex["_id"],
    }


# --- timestamps and computed fields (item 6) ---------------------------------------------


def test_each_model_carries_planhats_timestamp_names(api: httpx.Client) -> None:
    # shared/reference/planhat-api.md: createdAt and updatedAt on every record; createDate
    # on companies and endusers, lastUpdated on companies (hull/hull-planhat fixtures,
    # airbyte's source-planhat manifest) and invoices (planhat.com/developers/api/invoice)
    company_without_source_id(api, "acme")
    records = {
        "companies": api.get("/companies/extid-acme").json(),
        "endusers": create(api, "endusers", {"email": "a@acme.com", "companyId": "extid-acme"}),
        "licenses": create(api, "licenses", license_("l1", "extid-acme")),
        "invoices": create(api, "invoices", {"currency": "USD", "cId": "extid-acme"}),
    }

    names = {model: {"createDate", "lastUpdated"} & set(r) for model, r in records.items()}

    assert names == {
        "companies": {"createDate", "lastUpdated"},
        "endusers": {"createDate"},
        "licenses": set(),
        "invoices": {"lastUpdated"},
    }
    for record in records.values():
        assert parse_time(record["createdAt"]) <= parse_time(record["updatedAt"])


def test_records_carry_a_version_key_of_zero(api: httpx.Client) -> None:
    # assumed (audit row 19, an inference): hull/hull-planhat's and laravel-planhat's
    # fixtures show Mongoose's __v, 0 even on records that were updated
    acme = company_without_source_id(api, "acme")

    updated = api.put(f"/companies/{acme['_id']}", json={"phone": "1", "__v": 7}).json()

    assert (acme["__v"], updated["__v"]) == (0, 0)


def test_an_enduser_keeps_the_create_date_it_is_sent(api: httpx.Client) -> None:
    # planhat/docs source/includes/_contacts.md: createDate "defaults to time of creation
    # if not specified"
    company_without_source_id(api, "acme")
    enduser = {"email": "a@acme.com", "companyId": "extid-acme", "createDate": "2019-01-02"}

    assert create(api, "endusers", enduser)["createDate"] == "2019-01-02"


def test_last_updated_moves_with_every_write_but_is_no_change(api: httpx.Client) -> None:
    # assumed: lastUpdated moves like updatedAt (which Planhat bumps on every write,
    # shared/reference/planhat-api.md), and neither counts as a change in a bulk answer
    company = {"sourceId": "c1", "name": "Acme"}
    upsert(api, "companies", [company])
    before = api.get("/companies/srcid-c1").json()

    answer = upsert(api, "companies", [company])

    after = api.get("/companies/srcid-c1").json()
    assert parse_time(after["lastUpdated"]) >= parse_time(before["lastUpdated"])
    assert after["createDate"] == before["createDate"]
    assert (answer["updated"], answer["nonupdates"]) == (0, 1)


def test_a_license_shows_the_fields_planhat_computes(api: httpx.Client) -> None:
    # planhat.com/developers/api/license: companyName "(Autogenerated)"; arr from mrr
    # (audit row 21); renewalDaysFromNow as days from today to renewalDate: assumed
    # (hull's license fixture: a renewal a year ahead shows 365)
    company_without_source_id(api, "acme")
    renewal = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()

    shown = create(api, "licenses", license_("l1", "extid-acme", mrr=99.5, renewalDate=renewal))

    assert (shown["arr"], shown["companyName"], shown["renewalDaysFromNow"]) == (
        1194.0,
        "Company acme",
        30,
    )
    assert api.get(f"/licenses/{shown['_id']}").json()["arr"] == 1194.0


def test_computed_fields_sent_by_the_caller_are_ignored(api: httpx.Client) -> None:
    # assumed: what Planhat computes is not taken from the caller (neither stored nor refused)
    company_without_source_id(api, "acme")
    sent = license_("l1", "extid-acme", arr=1, companyName="Other", createdAt="2001-01-01")

    answer = upsert(api, "licenses", [sent])

    assert answer["created"] == 1
    shown = api.get("/licenses/srcid-l1").json()
    assert (shown["arr"], shown["companyName"]) == (1200, "Company acme")
    assert not shown["createdAt"].startswith("2001")


@pytest.mark.parametrize(
    ("model", "record", "field"),
    [
        ("projects", {"name": "P", "companyId": "extid-acme"}, "companyName"),
        ("assets", {"name": "A", "companyId": "extid-acme"}, "companyName"),
        ("invoices", {"currency": "USD", "cId": "extid-acme"}, "cName"),
    ],
)
def test_records_of_a_company_show_its_name(
    api: httpx.Client, model: str, record: Record, field: str
) -> None:
    # companyName "(Autogenerated)": planhat.com/developers/api/project; assets: airbyte's
    # source-planhat manifest; an invoice's cName: planhat.com/developers/api/invoice
    company_without_source_id(api, "acme")
    made = create(api, model, record)

    api.put("/companies/extid-acme", json={"name": "Acme Renamed"}).raise_for_status()

    assert made[field] == "Company acme"
    assert api.get(f"/{model}/{made['_id']}").json()[field] == "Acme Renamed"


def test_an_enduser_shows_its_company_and_a_composed_name(api: httpx.Client) -> None:
    # planhat.com/developers/api/enduser: companyName "(Autogenerated)"; name "gets
    # autogenerated if the firstName and/or lastName are defined"
    company_without_source_id(api, "acme")
    enduser = {"email": "a@acme.com", "companyId": "extid-acme", "firstName": "Ada",
               "lastName": "Lovelace", "name": "ignored"}  # fmt: skip

    shown = create(api, "endusers", enduser)

    assert (shown["companyName"], shown["name"]) == ("Company acme", "Ada Lovelace")


@pytest.mark.parametrize(
    ("licenses", "status"),
    [
        ([], "prospect"),
        ([{"fromDate": "2020-01-01"}], "customer"),
        ([{"fromDate": "2099-01-01"}], "coming"),
        ([{"fromDate": "2020-01-01", "toDate": "2099-01-01", "renewalStatus": "lost"}], "canceled"),
        ([{"fromDate": "2020-01-01", "toDate": "2021-01-01", "renewalStatus": "lost"}], "lost"),
        (
            [{"fromDate": "2020-01-01", "toDate": "2021-01-01"}, {"fromDate": "2099-01-01"}],
            "coming",
        ),
    ],
)
def test_a_companys_status_follows_its_licenses(
    api: httpx.Client, licenses: list[Record], status: str
) -> None:
    # planhat.com/developers/api/company: status, one of prospect, coming, customer,
    # canceled, lost "(Autogenerated)"; the rules: support.planhat.com/en/articles/1697510;
    # which wins among several licenses is assumed
    company_without_source_id(api, "acme", status="customer")  # a status sent is ignored
    for n, fields in enumerate(licenses):
        create(api, "licenses", license_(f"l{n}", "extid-acme", **fields))

    assert api.get("/companies/extid-acme").json()["status"] == status
    [listed] = listing(api, "companies", select="status")
    assert listed["status"] == status


def test_a_list_sorts_and_selects_computed_fields(api: httpx.Client) -> None:
    # assumed: computed fields list, sort and select like stored ones
    company_without_source_id(api, "acme")
    for n, mrr in enumerate((30, 10, 20)):
        create(api, "licenses", license_(f"l{n}", "extid-acme", mrr=mrr))

    shown = listing(api, "licenses", sort="-arr", select="arr")

    assert [(set(r), r["arr"]) for r in shown] == [({"_id", "arr"}, a) for a in (360, 240, 120)]


def test_renewal_days_count_from_today(api: httpx.Client) -> None:
    # assumed: whole days between today (UTC) and the renewal date, negative once passed
    company_without_source_id(api, "acme")
    past = date(2020, 1, 1)

    shown = create(api, "licenses", license_("l1", "extid-acme", renewalDate=past.isoformat()))

    assert shown["renewalDaysFromNow"] == (past - datetime.now(UTC).date()).days
