"""The TodoEntry aggregate: field rules, versions and etags, id rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.domain.errors import ConcurrentModificationError, FieldViolation, ValidationError
from service.domain.todo_entry import TodoEntry, millis, validate_client_id

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
T2 = T0 + timedelta(seconds=2)


def make(
    content: str = "buy milk",
    tags: list[str] | None = None,
    done: bool = False,
    now: datetime = T0,
    entry_id: str = "todo-1",
) -> TodoEntry:
    return TodoEntry.create(entry_id, content, tags or [], done, now)


def fields_of(error: ValidationError) -> list[str]:
    return [violation.field for violation in error.violations]


class TestCreateContent:
    def test_content_is_trimmed(self) -> None:
        entry = make(content="  \t buy milk \n ")

        assert entry.content == "buy milk"

    def test_inner_white_space_is_kept(self) -> None:
        assert make(content=" a  b ").content == "a  b"

    @pytest.mark.parametrize("content", ["", " ", "\t\n  "])
    def test_empty_or_white_space_only_content_is_rejected(self, content: str) -> None:
        with pytest.raises(ValidationError) as caught:
            make(content=content)

        assert fields_of(caught.value) == ["content"]

    def test_content_of_4096_characters_is_accepted(self) -> None:
        content = "x" * 4096

        assert make(content=content).content == content

    def test_content_of_4097_characters_is_rejected(self) -> None:
        with pytest.raises(ValidationError) as caught:
            make(content="x" * 4097)

        assert fields_of(caught.value) == ["content"]

    def test_length_limit_applies_after_trimming(self) -> None:
        entry = make(content="   " + "x" * 4096 + "   ")

        assert len(entry.content) == 4096


class TestCreateTags:
    def test_tags_are_trimmed_and_lower_cased(self) -> None:
        entry = make(tags=["  Home ", "WORK"])

        assert entry.tags == frozenset({"home", "work"})

    def test_duplicate_tags_collapse_after_normalisation(self) -> None:
        entry = make(tags=["home", "HOME", " home ", "Home"])

        assert entry.tags == frozenset({"home"})

    def test_no_tags_gives_an_empty_set(self) -> None:
        assert make(tags=[]).tags == frozenset()

    def test_tag_of_64_characters_is_accepted(self) -> None:
        tag = "a" * 64

        assert make(tags=[tag]).tags == frozenset({tag})

    def test_tag_of_65_characters_is_rejected(self) -> None:
        with pytest.raises(ValidationError) as caught:
            make(tags=["a" * 65])

        assert fields_of(caught.value) == ["tags[0]"]

    @pytest.mark.parametrize("tag", ["a.b", "a_b", "a:b", "a/b", "a-b", "0", "9lives", "x._:/-"])
    def test_allowed_punctuation_after_the_first_character_is_accepted(self, tag: str) -> None:
        assert make(tags=[tag]).tags == frozenset({tag})

    @pytest.mark.parametrize("tag", [".a", "_a", ":a", "/a", "-a"])
    def test_leading_punctuation_is_rejected(self, tag: str) -> None:
        with pytest.raises(ValidationError) as caught:
            make(tags=[tag])

        assert fields_of(caught.value) == ["tags[0]"]

    @pytest.mark.parametrize("tag", ["", "   ", "a b", "a#b", "a+b", "ä", "a,b", "a\\b"])
    def test_empty_or_disallowed_characters_are_rejected(self, tag: str) -> None:
        with pytest.raises(ValidationError) as caught:
            make(tags=[tag])

        assert fields_of(caught.value) == ["tags[0]"]

    def test_32_distinct_tags_are_accepted(self) -> None:
        tags = [f"t{i}" for i in range(32)]

        assert len(make(tags=tags).tags) == 32

    def test_33_distinct_tags_are_rejected(self) -> None:
        with pytest.raises(ValidationError) as caught:
            make(tags=[f"t{i}" for i in range(33)])

        assert fields_of(caught.value) == ["tags"]

    def test_40_tags_collapsing_to_32_distinct_are_accepted(self) -> None:
        distinct = [f"t{i}" for i in range(32)]
        tags = distinct + [tag.upper() for tag in distinct[:8]]
        assert len(tags) == 40

        assert make(tags=tags).tags == frozenset(distinct)

    def test_each_bad_tag_is_reported_with_its_index(self) -> None:
        with pytest.raises(ValidationError) as caught:
            make(tags=["ok", "-bad", "fine", "", "also ok"])

        assert fields_of(caught.value) == ["tags[1]", "tags[3]", "tags[4]"]


class TestCreateReportsEveryProblem:
    def test_content_and_tag_problems_come_in_one_error(self) -> None:
        with pytest.raises(ValidationError) as caught:
            make(content="  ", tags=["ok", "Not Ok"])

        assert fields_of(caught.value) == ["content", "tags[1]"]

    def test_each_violation_has_a_description(self) -> None:
        with pytest.raises(ValidationError) as caught:
            make(content="", tags=["-x"])

        assert all(violation.description for violation in caught.value.violations)

    def test_the_message_names_every_field(self) -> None:
        with pytest.raises(ValidationError) as caught:
            make(content="", tags=["-x"])

        assert "content" in str(caught.value)
        assert "tags[0]" in str(caught.value)


class TestCreateTimestamps:
    def test_a_new_entry_is_at_version_1_and_not_done_unless_asked(self) -> None:
        entry = make()

        assert entry.version == 1
        assert entry.done is False
        assert make(done=True).done is True

    def test_created_and_updated_are_the_creation_time(self) -> None:
        entry = make(now=T0)

        assert entry.created_at == T0
        assert entry.updated_at == T0

    def test_timestamps_are_truncated_to_milliseconds(self) -> None:
        entry = make(now=T0.replace(microsecond=123_987))

        assert entry.created_at == T0.replace(microsecond=123_000)
        assert entry.updated_at == T0.replace(microsecond=123_000)

    def test_timestamps_are_stored_in_utc(self) -> None:
        plus_two = timezone(timedelta(hours=2))
        entry = make(now=datetime(2026, 1, 1, 14, 0, tzinfo=plus_two))

        assert entry.created_at == T0
        assert entry.created_at.utcoffset() == timedelta(0)

    def test_a_naive_datetime_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            make(now=datetime(2026, 1, 1, 12, 0))  # a naive datetime on purpose


class TestVersionsAndEtags:
    def test_edit_of_content_bumps_version_and_changes_etag(self) -> None:
        entry = make()

        changed = entry.edit(T1, content="buy bread")

        assert changed.content == "buy bread"
        assert changed.version == 2
        assert changed.etag != entry.etag
        assert changed.updated_at == T1
        assert changed.created_at == entry.created_at

    def test_edit_of_tags_bumps_version(self) -> None:
        entry = make(tags=["a"])

        changed = entry.edit(T1, tags=["B", "c"])

        assert changed.tags == frozenset({"b", "c"})
        assert changed.version == 2
        assert changed.etag != entry.etag

    def test_edit_of_done_bumps_version(self) -> None:
        entry = make()

        changed = entry.edit(T1, done=True)

        assert changed.done is True
        assert changed.version == 2

    def test_every_real_change_bumps_the_version_by_one_and_gives_a_new_etag(self) -> None:
        v1 = make(tags=["a"])
        v2 = v1.edit(T1, content="two")
        v3 = v2.add_tag("b", T1)
        v4 = v3.remove_tag("a", T1)
        v5 = v4.edit(T1, done=True)
        states = [v1, v2, v3, v4, v5]

        assert [state.version for state in states] == [1, 2, 3, 4, 5]
        assert len({state.etag for state in states}) == 5

    def test_edit_is_not_in_place(self) -> None:
        entry = make()

        entry.edit(T1, content="other")

        assert entry.content == "buy milk"
        assert entry.version == 1

    def test_edit_to_the_same_values_returns_the_same_object(self) -> None:
        entry = make(content="buy milk", tags=["a", "b"], done=False)

        same = entry.edit(T1, content="  buy milk ", tags=["B", "a", "a"], done=False)

        assert same is entry
        assert same.etag == entry.etag
        assert same.updated_at == T0

    def test_edit_without_fields_returns_the_same_object(self) -> None:
        entry = make()

        assert entry.edit(T1) is entry

    def test_add_tag_of_a_present_tag_returns_the_same_object(self) -> None:
        entry = make(tags=["home"])

        same = entry.add_tag(" HOME ", T1)

        assert same is entry
        assert same.etag == entry.etag

    def test_remove_tag_of_an_absent_tag_returns_the_same_object(self) -> None:
        entry = make(tags=["home"])

        same = entry.remove_tag("work", T1)

        assert same is entry
        assert same.etag == entry.etag

    def test_add_tag_normalises_the_tag(self) -> None:
        assert make().add_tag("  Work ", T1).tags == frozenset({"work"})

    def test_remove_tag_normalises_the_tag(self) -> None:
        assert make(tags=["work"]).remove_tag(" WORK ", T1).tags == frozenset()

    def test_add_tag_rejects_an_invalid_tag(self) -> None:
        with pytest.raises(ValidationError) as caught:
            make().add_tag("-bad", T1)

        assert fields_of(caught.value) == ["tag"]

    def test_edit_rejects_invalid_fields_together(self) -> None:
        with pytest.raises(ValidationError) as caught:
            make().edit(T1, content=" ", tags=["ok", "Not ok"])

        assert fields_of(caught.value) == ["content", "tags[1]"]

    def test_updated_at_never_goes_backwards(self) -> None:
        entry = make(now=T2)

        changed = entry.edit(T0, content="clock went back")

        assert changed.updated_at == T2
        assert changed.version == 2

    def test_updated_at_is_truncated_to_milliseconds(self) -> None:
        changed = make().edit(T1.replace(microsecond=456_789), done=True)

        assert changed.updated_at == T1.replace(microsecond=456_000)

    def test_etag_differs_for_same_id_and_version_with_other_create_time(self) -> None:
        first = make(entry_id="same", now=T0)
        recreated = make(entry_id="same", now=T0 + timedelta(milliseconds=1))

        assert first.version == recreated.version == 1
        assert first.etag != recreated.etag

    def test_etag_is_the_same_for_equal_states(self) -> None:
        assert make(now=T0).etag == make(now=T0).etag


class TestEnsureEtag:
    def test_empty_etag_means_no_check(self) -> None:
        entry = make().edit(T1, done=True)

        entry.ensure_etag("")

    def test_current_etag_passes(self) -> None:
        entry = make()

        entry.ensure_etag(entry.etag)

    def test_stale_etag_raises_concurrent_modification(self) -> None:
        entry = make(entry_id="todo-7")
        stale = entry.etag
        changed = entry.edit(T1, done=True)

        with pytest.raises(ConcurrentModificationError) as caught:
            changed.ensure_etag(stale)

        assert caught.value.entry_id == "todo-7"

    def test_made_up_etag_raises_concurrent_modification(self) -> None:
        with pytest.raises(ConcurrentModificationError):
            make().ensure_etag('"nonsense"')


class TestTagLimitOnAdd:
    def test_adding_a_33rd_tag_is_rejected(self) -> None:
        entry = make(tags=[f"t{i}" for i in range(32)])

        with pytest.raises(ValidationError) as caught:
            entry.add_tag("one-more", T1)

        assert fields_of(caught.value) == ["tag"]

    def test_adding_a_present_tag_to_a_full_entry_is_a_no_op(self) -> None:
        entry = make(tags=[f"t{i}" for i in range(32)])

        assert entry.add_tag("t5", T1) is entry

    def test_adding_the_32nd_tag_is_accepted(self) -> None:
        entry = make(tags=[f"t{i}" for i in range(31)])

        assert len(entry.add_tag("t31", T1).tags) == 32


class TestValidationError:
    def test_under_nests_every_field_below_the_prefix(self) -> None:
        error = ValidationError([FieldViolation("content", "bad"), FieldViolation("tags[1]", "worse")])

        nested = error.under("todo")

        assert nested.violations == (
            FieldViolation("todo.content", "bad"),
            FieldViolation("todo.tags[1]", "worse"),
        )

    def test_under_can_be_applied_twice(self) -> None:
        error = ValidationError.single("content", "bad")

        assert fields_of(error.under("todo").under("request")) == ["request.todo.content"]

    def test_under_leaves_the_original_unchanged(self) -> None:
        error = ValidationError.single("content", "bad")

        error.under("todo")

        assert fields_of(error) == ["content"]

    def test_an_error_without_violations_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least one violation"):
            ValidationError([])


class TestValidateClientId:
    @pytest.mark.parametrize("entry_id", ["a", "abc-1", "a1", "a-b-c", "a" * 63, "z9"])
    def test_valid_ids_are_returned(self, entry_id: str) -> None:
        assert validate_client_id(entry_id) == entry_id

    @pytest.mark.parametrize(
        "entry_id",
        ["", "a" * 64, "1abc", "abc-", "-abc", "Abc", "abC", "a_b", "a.b", "a b", "ä"],
    )
    def test_invalid_ids_are_rejected_naming_the_field(self, entry_id: str) -> None:
        with pytest.raises(ValidationError) as caught:
            validate_client_id(entry_id)

        assert fields_of(caught.value) == ["todo_id"]


class TestMillis:
    @pytest.mark.parametrize(
        ("moment", "expected"),
        [
            (datetime(1970, 1, 1, tzinfo=UTC), 0),
            (datetime(1970, 1, 1, 0, 0, 0, 1_000, tzinfo=UTC), 1),
            (datetime(1970, 1, 1, 0, 0, 0, 999, tzinfo=UTC), 0),
            (datetime(1970, 1, 2, tzinfo=UTC), 86_400_000),
            (datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC), -1),
            (datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC), 1_000_000_000_000),
            (datetime(2026, 1, 1, 12, 0, 0, 123_456, tzinfo=UTC), 1_767_268_800_123),
        ],
    )
    def test_millis_of_utc_datetimes(self, moment: datetime, expected: int) -> None:
        assert millis(moment) == expected

    def test_millis_agrees_with_timestamp_for_utc(self) -> None:
        moment = datetime(2031, 7, 4, 3, 2, 1, 987_000, tzinfo=UTC)

        assert millis(moment) == round(moment.timestamp() * 1000)

    def test_millis_of_a_non_utc_aware_datetime_counts_from_the_utc_epoch(self) -> None:
        # 01:00 at UTC+1 is the epoch itself; the docstring promises
        # "milliseconds since the epoch of an aware datetime".
        epoch_in_paris_winter = datetime(1970, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))

        assert millis(epoch_in_paris_winter) == 0


class TestBoundsBeforeWork:
    def test_more_raw_tags_than_accepted_is_one_violation(self) -> None:
        from service.domain.todo_entry import MAX_RAW_TAGS, normalize_tags  # noqa: PLC0415

        with pytest.raises(ValidationError) as caught:
            normalize_tags(["Not Valid!"] * (MAX_RAW_TAGS + 1))
        assert [v.field for v in caught.value.violations] == ["tags"]
        assert normalize_tags(["Home"] * MAX_RAW_TAGS) == frozenset({"home"}), "duplicates up to the bound are fine"

    def test_a_huge_raw_tag_is_refused_unread(self) -> None:
        from service.domain.todo_entry import MAX_RAW_TAG_LENGTH, normalize_tag, normalize_tags  # noqa: PLC0415

        huge = " " * MAX_RAW_TAG_LENGTH + "ok"
        with pytest.raises(ValidationError) as caught:
            normalize_tags([huge])
        assert [v.field for v in caught.value.violations] == ["tags[0]"]
        with pytest.raises(ValidationError):
            normalize_tag(huge)
