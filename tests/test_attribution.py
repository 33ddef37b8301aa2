"""Rep resolution: every path, their order, phone formats, disabled users, and the skips."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from poller.adapters.siro.settings import SiroSettings
from poller.domain.attribution import (
    USERS_NOT_SYNCED,
    AttributionMethod,
    InMemoryUserDirectory,
    RepRules,
    RepSkipReason,
    attribute,
)
from poller.domain.failures import Disposition, StepFailure
from poller.domain.records import Call, DirectoryUser
from poller.domain.siro import AudioFormat, RecordingCreate
from poller.domain.states import CallState
from poller.wiring import rep_rules_from_settings

SYNCED = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def user(user_id: str, email: str | None = None, phone: str | None = None, **fields: Any) -> Any:
    return DirectoryUser(
        id=user_id,
        email=email,
        email_lower=email.lower() if email else None,
        phone_number=phone,
        phone_e164=phone,
        first_name=user_id.removeprefix("u-").title(),
        synced_at=SYNCED,
        **fields,
    )


USERS = [
    user("u-ana", "Ana@Example.com", "+14255550100"),
    user("u-ben", "ben@example.com", "+14255550111"),
    user("u-cy", "cy@example.com", "+14255550122"),
    user("u-old", "old@example.com", "+14255550133", disabled=True),
    user("u-gone", "gone@example.com", None, missing_since=SYNCED),
    # One person, two accounts: the first disabled, then re-created with the same email.
    user("u-rehired-1", "rehired@example.com", None, disabled=True),
    user("u-rehired-2", "rehired@example.com", None),
    # The office line on two profiles.
    user("u-desk-1", "desk1@example.com", "+14255550199"),
    user("u-desk-2", "desk2@example.com", "+14255550199"),
]
DIRECTORY = InMemoryUserDirectory(USERS, synced_at=SYNCED)
RULES = rep_rules_from_settings(
    SiroSettings(
        rep_map={
            "provider_id": {"agent-7": "u-ben"},
            "extension": {"204": "u-cy"},
            "email": {"Shared.Inbox@Example.com": "u-ana"},
            "phone": {"(425) 555-0177": "u-ben"},
        }
    )
)


def call(**rep: Any) -> Call:
    return Call(id=1, provider="acme", provider_call_id="call-1", state=CallState.PENDING, **rep)


def skipped(the_call: Call, rules: RepRules = RULES, directory: Any = DIRECTORY) -> StepFailure:
    with pytest.raises(StepFailure) as caught:
        attribute(the_call, directory, rules)
    assert caught.value.disposition is Disposition.SKIP
    return caught.value


@pytest.mark.parametrize(
    ("rep", "method", "user_id"),
    [
        ({"rep_provider_id": "agent-7"}, "map_provider_id", "u-ben"),
        ({"rep_extension": " 204 "}, "map_extension", "u-cy"),
        ({"rep_email": "SHARED.inbox@example.com"}, "map_email", "u-ana"),
        ({"rep_phone": "+1 425-555-0177"}, "map_phone", "u-ben"),
        ({"rep_email": "ana@example.com"}, "siro_email", "u-ana"),
        ({"rep_phone": "425.555.0111"}, "siro_phone", "u-ben"),
    ],
)
def test_each_rule_resolves_a_siro_user(rep: dict[str, str], method: str, user_id: str) -> None:
    found = attribute(call(**rep), DIRECTORY, RULES)
    assert (found.method, found.siro_user_id) == (method, user_id)
    assert found.body_fields() == {"user_id": user_id}  # userId alone: nothing to disagree with
    assert found.detail


def test_the_first_matching_rule_wins_in_the_documented_order() -> None:
    # Every field names a different user; dropping the winning field hands over to the next.
    rep = {
        "rep_provider_id": "agent-7",  # u-ben
        "rep_extension": "204",  # u-cy
        "rep_email": "shared.inbox@example.com",  # u-ana by rep_map
        "rep_phone": "425 555 0177",  # u-ben by rep_map
    }
    order = []
    while rep:
        found = attribute(call(**rep), DIRECTORY, RULES)
        order.append(found.method.value)
        rep.pop(next(iter(rep)))
    assert order == ["map_provider_id", "map_extension", "map_email", "map_phone"]

    both = call(rep_email="cy@example.com", rep_phone="+14255550111")  # cy by email, ben by phone
    assert attribute(both, DIRECTORY, RULES).siro_user_id == "u-cy"
    mapped_beats_directory = call(rep_extension="204", rep_email="ana@example.com")
    assert attribute(mapped_beats_directory, DIRECTORY, RULES).siro_user_id == "u-cy"


@pytest.mark.parametrize(
    "phone",
    [
        "+1 (425) 555-0100",
        "4255550100",
        "001 425 555 0100",
        "425-555-0100 x123",
        "(425) 555-0100 ext. 123",
    ],
)
def test_phone_formats_match_the_same_siro_user(phone: str) -> None:
    found = attribute(call(rep_phone=phone), DIRECTORY, RULES)
    assert (found.method, found.siro_user_id) == (AttributionMethod.SIRO_PHONE, "u-ana")


def test_email_matching_ignores_case_and_spaces() -> None:
    found = attribute(call(rep_email="  ANA@EXAMPLE.COM "), DIRECTORY, RULES)
    assert (found.method, found.siro_user_id) == (AttributionMethod.SIRO_EMAIL, "u-ana")


def test_an_unknown_rep_falls_back_to_email_and_phone_for_siro_to_match() -> None:
    found = attribute(
        call(rep_email="New.Hire@Example.com", rep_phone="+1 (206) 555-0142 x7"), DIRECTORY, RULES
    )
    assert found.method is AttributionMethod.FALLBACK_EMAIL
    assert found.siro_user_id is None
    assert found.body_fields() == {
        "user_email": "new.hire@example.com",
        "user_phone": "+12065550142",  # E.164 has no extension
    }
    assert "no Siro user has" in found.detail

    only_phone = attribute(call(rep_phone="2065550142"), DIRECTORY, RULES)
    assert only_phone.method is AttributionMethod.FALLBACK_PHONE
    assert only_phone.body_fields() == {"user_phone": "+12065550142"}


def test_what_attribute_returns_makes_a_valid_siro_body() -> None:
    for rep in ({"rep_email": "ana@example.com"}, {"rep_phone": "2065550142"}):
        found = attribute(call(**rep), DIRECTORY, RULES)
        body = RecordingCreate(
            file_url="https://x/y", file_type=AudioFormat.MP3, **found.body_fields()
        )
        assert body.user_id or body.user_email or body.user_phone


@pytest.mark.parametrize(
    ("rep", "says"),
    [
        ({}, "names no rep"),
        ({"rep_name": "Ana"}, "names no rep"),  # a name is nothing Siro can attribute by
        ({"rep_extension": "999"}, "maps neither its provider id nor its extension"),
        ({"rep_provider_id": "agent-unknown"}, "maps neither"),
        ({"rep_email": "n/a"}, "'n/a' is not an email address"),
        ({"rep_phone": "anonymous"}, "'anonymous' is not a full phone number"),
        ({"rep_phone": "204"}, "not a full phone number"),
    ],
)
def test_a_call_without_a_usable_rep_identity_is_skipped(rep: dict[str, str], says: str) -> None:
    failure = skipped(call(**rep))
    assert failure.kind == RepSkipReason.NO_REP_IDENTITY == "no_rep_identity"
    assert says in failure.message


def test_no_identity_wins_over_require_known_rep() -> None:
    strict = RepRules(require_known_rep=True)
    assert skipped(call(), strict).kind == "no_rep_identity"


def test_require_known_rep_skips_reps_that_are_no_siro_user() -> None:
    strict = rep_rules_from_settings(
        SiroSettings(require_known_rep=True, rep_map={"extension": {"204": "u-typo"}})
    )
    failure = skipped(call(rep_email="new.hire@example.com"), strict)
    assert failure.kind == RepSkipReason.UNKNOWN_REP == "unknown_rep"
    assert "require_known_rep" in failure.message
    # An explicit mapping must name a user Siro has.
    typo = skipped(call(rep_extension="204"), strict)
    assert typo.kind == "unknown_rep" and "u-typo" in typo.message
    # Known reps go through, by any rule.
    assert attribute(call(rep_email="ana@example.com"), DIRECTORY, strict).siro_user_id == "u-ana"


def test_without_require_known_rep_a_mapping_to_an_unknown_id_goes_with_a_warning() -> None:
    rules = rep_rules_from_settings(SiroSettings(rep_map={"extension": {"204": "u-typo"}}))
    found = attribute(call(rep_extension="204"), DIRECTORY, rules)
    assert found.siro_user_id == "u-typo"
    assert "warning: that id is not among Siro's users" in found.detail


def test_a_directory_match_on_a_disabled_user_is_skipped_not_given_to_someone_else() -> None:
    failure = skipped(call(rep_email="old@example.com"))
    assert failure.kind == RepSkipReason.REP_DISABLED == "rep_disabled"
    assert "u-old" in failure.message and "disabled" in failure.message
    assert "siro.rep_map" in failure.message  # says how to upload it anyway

    # The phone may have been reassigned to an active user; the email says who made the call.
    conflicting = call(rep_email="old@example.com", rep_phone="+14255550100")
    assert skipped(conflicting).kind == "rep_disabled"
    # A phone match on a disabled user stops too, rather than falling back to userPhone.
    assert skipped(call(rep_phone="+1 425 555 0133")).kind == "rep_disabled"


def test_a_user_siro_no_longer_lists_counts_as_disabled() -> None:
    failure = skipped(call(rep_email="gone@example.com"))
    assert failure.kind == "rep_disabled"
    assert "no longer listed by Siro" in failure.message


def test_a_re_created_account_wins_over_its_disabled_predecessor() -> None:
    found = attribute(call(rep_email="rehired@example.com"), DIRECTORY, RULES)
    assert found.siro_user_id == "u-rehired-2"


def test_an_explicit_mapping_to_a_disabled_user_is_followed_and_flagged() -> None:
    rules = rep_rules_from_settings(SiroSettings(rep_map={"email": {"old@example.com": "u-old"}}))
    found = attribute(call(rep_email="old@example.com"), DIRECTORY, rules)
    assert (found.method, found.siro_user_id) == (AttributionMethod.MAP_EMAIL, "u-old")
    assert "warning: Siro lists that user as disabled" in found.detail


def test_several_active_users_on_one_phone_is_ambiguous_not_a_guess() -> None:
    failure = skipped(call(rep_phone="425-555-0199"))
    assert failure.kind == RepSkipReason.AMBIGUOUS_REP == "ambiguous_rep"
    assert "u-desk-1" in failure.message and "u-desk-2" in failure.message


def test_nothing_is_resolved_before_siro_s_users_were_ever_synced() -> None:
    never = InMemoryUserDirectory()
    with pytest.raises(StepFailure) as caught:
        attribute(call(rep_email="ana@example.com"), never, RULES)
    assert caught.value.disposition is Disposition.RETRY
    assert caught.value.kind == USERS_NOT_SYNCED
    # Synced, even if empty: resolution runs (and falls back).
    empty = InMemoryUserDirectory(synced_at=SYNCED)
    assert attribute(call(rep_email="ana@example.com"), empty, RULES).method == "fallback_email"


def test_the_default_region_reads_national_numbers() -> None:
    uk_user = user("u-uk", "uk@example.com", "+442079460958")
    directory = InMemoryUserDirectory([uk_user], synced_at=SYNCED)
    uk = rep_rules_from_settings(SiroSettings(phone_default_region="gb"))
    assert attribute(call(rep_phone="020 7946 0958"), directory, uk).siro_user_id == "u-uk"
    # Read as a US number it is no number at all: skipped, never matched to the UK user.
    us = rep_rules_from_settings(SiroSettings())
    assert skipped(call(rep_phone="020 7946 0958"), us, directory).kind == "no_rep_identity"


def test_rep_map_keys_are_normalised_once_from_the_settings() -> None:
    assert RULES.by_email == {"shared.inbox@example.com": "u-ana"}
    assert RULES.by_phone == {"+14255550177": "u-ben"}
    assert RULES.by_extension == {"204": "u-cy"}
