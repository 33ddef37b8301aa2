"""CRM linking: ids from the provider record, connection and objects both or neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from poller.adapters.siro.settings import SiroSettings
from poller.adapters.siro_fake import InMemorySiro
from poller.config import ConfigError, load_settings
from poller.core.crm_connection import resolve_connection_id
from poller.domain.crm import (
    Contact,
    CrmLink,
    CrmRules,
    UnresolvedConnection,
    choose_connection,
    contact_of,
    crm_link,
    crm_objects_in,
    decide_crm_link,
)
from poller.domain.records import Call
from poller.domain.siro import AudioFormat, CrmObject, IntegrationConnection, RecordingCreate
from poller.domain.states import CallState
from poller.wiring import crm_rules_from_settings

RULES = crm_rules_from_settings(
    SiroSettings(
        integration_connection_id="conn-1",
        crm={
            "objects": {
                "crm.opportunity_id": "Opportunity",
                "crm.account_id": "account",  # any case; Siro's spelling is kept
                "contacts": "Contact",
                "deals.0.id": "Opportunity",
            }
        },
    )
)
RAW = {
    "call_id": "call-789",
    "crm": {"opportunity_id": "006A", "account_id": 1001},
    "contacts": ["003X", "003Y", "003X"],
    "deals": [{"id": "006A"}, {"id": "006B"}],
}


def test_ids_are_read_by_dotted_path_as_one_value_or_a_list_each_once() -> None:
    assert crm_objects_in(RAW, RULES) == (
        CrmObject(object_type="Opportunity", object_id="006A"),
        CrmObject(object_type="Account", object_id="1001"),
        CrmObject(object_type="Contact", object_id="003X"),
        CrmObject(object_type="Contact", object_id="003Y"),
    )


@pytest.mark.parametrize("value", [None, "", "  ", True, {"id": "x"}, 1.5, [None, ""]])
def test_values_that_are_no_id_are_left_out(value: Any) -> None:
    rules = CrmRules(connection_id="conn-1", objects=(("crm.id", "Lead"),))
    assert crm_objects_in({"crm": {"id": value}}, rules) == ()


def test_ids_and_a_connection_make_a_link_with_both() -> None:
    decision = decide_crm_link(RAW, RULES, "conn-1")
    assert decision.link is not None
    assert decision.link.integration_connection_id == "conn-1"
    assert len(decision.link.crm_objects) == 4
    assert decision.detail.startswith("linked to Opportunity 006A, Account 1001")
    body = RecordingCreate(
        file_url="https://x/y",
        file_type=AudioFormat.MP3,
        user_id="u",
        **decision.link.body_fields(),
    )
    assert body.to_json()["integrationConnectionId"] == "conn-1"
    assert body.to_json()["crmObjects"][0] == {"objectType": "Opportunity", "objectId": "006A"}


def test_no_id_in_the_record_means_no_link_at_all() -> None:
    decision = decide_crm_link({"call_id": "c", "crm": {}}, RULES, "conn-1")
    assert decision.link is None
    assert "holds no CRM id" in decision.detail
    assert crm_link(None, RULES, "conn-1") is None


def test_ids_without_a_connection_are_not_sent_alone() -> None:
    rules = CrmRules(connection_name="Salesforce", objects=(("crm.opportunity_id", "Opportunity"),))
    decision = decide_crm_link(RAW, rules, None)
    assert decision.link is None
    assert decision.found == (CrmObject(object_type="Opportunity", object_id="006A"),)
    assert decision.detail.startswith("warning:")
    assert "'Salesforce' was not found" in decision.detail


def test_without_a_mapping_nothing_is_linked() -> None:
    decision = decide_crm_link(RAW, CrmRules(), None)
    assert decision.link is None and "no CRM mapping" in decision.detail


def test_a_link_cannot_be_built_with_one_half() -> None:
    with pytest.raises(ValueError, match="connection id and at least one object"):
        CrmLink("conn-1", ())
    with pytest.raises(ValueError, match="connection id and at least one object"):
        CrmLink("", (CrmObject(object_type="Lead", object_id="1"),))


def test_the_contact_goes_with_its_phone_in_e164() -> None:
    def call(**fields: Any) -> Call:
        return Call(id=1, provider="p", provider_call_id="c", state=CallState.PENDING, **fields)

    contact = contact_of(call(contact_name=" Jane Smith ", contact_phone="(555) 123-4567"), "US")
    assert contact == Contact("Jane Smith", "+15551234567")
    assert contact.body_fields() == {"contact_name": "Jane Smith", "contact_phone": "+15551234567"}
    assert contact_of(call(contact_phone="anonymous"), "US").body_fields() == {}


# -- configuration -------------------------------------------------------------------------


def load(tmp_path: Path, siro_toml: str) -> SiroSettings:
    path = tmp_path / "config.toml"
    path.write_text("[siro]\n" + siro_toml, encoding="utf-8")
    return load_settings(path).siro


def problems(tmp_path: Path, siro_toml: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, siro_toml)
    return caught.value.problems


def test_an_invalid_object_type_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        'integration_connection_id = "conn-1"\n'
        '[siro.crm]\nobjects = { "crm.opportunity_id" = "Oportunity" }\n',
    ) == [
        "siro.crm.objects: 'crm.opportunity_id' = 'Oportunity' is not a Siro CRM object type; "
        "use one of Opportunity, Account, Contact, Lead, Engagement, Event, ServiceAppointment"
    ]


def test_a_bad_path_is_a_config_error(tmp_path: Path) -> None:
    [problem] = problems(
        tmp_path, 'integration_connection_id = "c"\n[siro.crm]\nobjects = { "crm..id" = "Lead" }\n'
    )
    assert problem.startswith("siro.crm.objects") and "dotted path" in problem


def test_objects_need_a_connection_and_a_connection_needs_objects(tmp_path: Path) -> None:
    [alone] = problems(tmp_path, '[siro.crm]\nobjects = { "crm.id" = "Lead" }\n')
    assert alone.startswith("siro.crm: objects are mapped but no connection is set")
    [unused] = problems(tmp_path, 'integration_connection_name = "Salesforce"\n')
    assert unused.startswith("siro.crm: a connection is set but objects is empty")


def test_the_connection_is_an_id_or_a_name_not_both(tmp_path: Path) -> None:
    [both] = problems(
        tmp_path,
        'integration_connection_id = "c"\nintegration_connection_name = "n"\n'
        '[siro.crm]\nobjects = { "crm.id" = "Lead" }\n',
    )
    assert both.startswith("siro.integration_connection_name: set either this or")


def test_rep_map_keys_that_are_no_email_or_phone_are_config_errors(tmp_path: Path) -> None:
    assert problems(tmp_path, '[siro.rep_map]\nemail = { "bob" = "u-1" }\n') == [
        "siro.rep_map.email: 'bob' is not an email address"
    ]
    assert problems(tmp_path, '[siro.rep_map]\nphone = { "12" = "u-1" }\n') == [
        "siro.rep_map: the phone key '12' is not a phone number (siro.phone_default_region is US)"
    ]
    [clash] = problems(
        tmp_path, '[siro.rep_map]\nphone = { "+1 425 555 0100" = "u-1", "4255550100" = "u-2" }\n'
    )
    assert "mapped to different users" in clash
    [region] = problems(tmp_path, 'phone_default_region = "XX"\n')
    assert region.startswith("siro.phone_default_region: must be a region code")


# -- resolving a connection by name ---------------------------------------------------------


def connection(connection_id: str, name: str, active: bool = True) -> IntegrationConnection:
    return IntegrationConnection(id=connection_id, name=name, is_active=active)


def test_a_connection_is_found_by_its_name_in_any_case() -> None:
    found = [connection("conn-1", "Salesforce"), connection("conn-2", "HubSpot")]
    assert choose_connection(found, "salesforce").id == "conn-1"
    with pytest.raises(ValueError, match=r"no integration connection named 'Zoho'.*'HubSpot'"):
        choose_connection(found, "Zoho")


def test_of_two_connections_with_one_name_the_only_active_one_wins() -> None:
    assert (
        choose_connection(
            [connection("old", "Salesforce", active=False), connection("new", "Salesforce")],
            "Salesforce",
        ).id
        == "new"
    )
    with pytest.raises(ValueError, match=r"several .* \(a, b\).*integration_connection_id"):
        choose_connection(
            [connection("a", "Salesforce"), connection("b", "Salesforce")], "Salesforce"
        )


def test_resolving_asks_siro_only_for_a_name() -> None:
    siro = InMemorySiro(connections=[connection("conn-9", "Salesforce")])
    by_id = CrmRules(connection_id="conn-1", objects=(("crm.id", "Lead"),))
    assert resolve_connection_id(siro, by_id) == "conn-1"
    assert siro.calls == []
    by_name = CrmRules(connection_name="SALESFORCE", objects=(("crm.id", "Lead"),))
    assert resolve_connection_id(siro, by_name) == "conn-9"
    assert siro.calls == ["list_connections"]
    assert resolve_connection_id(siro, CrmRules()) is None
    with pytest.raises(UnresolvedConnection) as caught:
        resolve_connection_id(siro, CrmRules(connection_name="Zoho", objects=by_id.objects))
    assert str(caught.value).startswith("siro.integration_connection_name: Siro has no")
