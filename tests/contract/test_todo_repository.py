"""The promises every TodoRepository keeps, whatever store is behind it.

These tests use nothing but the TodoRepository interface, so that the same
suite runs against every implementation listed in conftest.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.domain.errors import ConcurrentModificationError, TodoAlreadyExistsError, TodoNotFoundError
from service.domain.repository import Cursor, ListQuery, TodoRepository
from service.domain.todo_entry import TodoEntry

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(milliseconds: int) -> datetime:
    return T0 + timedelta(milliseconds=milliseconds)


def entry(
    entry_id: str,
    content: str = "something to do",
    tags: tuple[str, ...] = (),
    done: bool = False,
    now: datetime = T0,
) -> TodoEntry:
    return TodoEntry.create(entry_id, content, tags, done, now)


def ids_of(entries: list[TodoEntry]) -> list[str]:
    return [item.id for item in entries]


async def everything(repository: TodoRepository) -> list[TodoEntry]:
    return await repository.list(ListQuery(limit=1_000))


class TestAddAndGet:
    async def test_round_trip_preserves_every_field(self, repository: TodoRepository) -> None:
        original = entry(
            "round-trip",
            content="Ünïcode ✓ and \"quotes\" and 'more'",
            tags=("home", "a.b:c/d-e_f"),
            done=True,
            now=datetime(2026, 3, 4, 5, 6, 7, 891_000, tzinfo=UTC),
        )

        returned = await repository.add(original)
        stored = await repository.get("round-trip")

        assert returned == original
        assert stored == original
        assert stored.created_at.microsecond == 891_000
        assert stored.created_at.utcoffset() == timedelta(0)
        assert stored.updated_at.utcoffset() == timedelta(0)
        assert isinstance(stored.tags, frozenset)
        assert stored.etag == original.etag

    async def test_round_trip_keeps_version_and_a_distinct_update_time(self, repository: TodoRepository) -> None:
        original = (
            entry("edited", tags=("a",), now=at(1))
            .edit(at(5_000), content="edited twice")
            .edit(datetime(2026, 6, 1, 0, 0, 0, 7_000, tzinfo=UTC), done=True)
        )
        assert original.version == 3

        await repository.add(original)

        assert await repository.get("edited") == original

    async def test_empty_tags_round_trip_as_an_empty_frozenset(self, repository: TodoRepository) -> None:
        await repository.add(entry("no-tags"))

        stored = await repository.get("no-tags")

        assert stored.tags == frozenset()
        assert isinstance(stored.tags, frozenset)

    async def test_get_of_a_missing_entry_is_not_found(self, repository: TodoRepository) -> None:
        with pytest.raises(TodoNotFoundError) as caught:
            await repository.get("missing")

        assert caught.value.entry_id == "missing"

    async def test_adding_a_taken_id_fails_and_keeps_the_first_entry(self, repository: TodoRepository) -> None:
        first = entry("taken", content="first", now=at(0))
        await repository.add(first)

        with pytest.raises(TodoAlreadyExistsError) as caught:
            await repository.add(entry("taken", content="second", now=at(1)))

        assert caught.value.entry_id == "taken"
        assert await repository.get("taken") == first
        assert ids_of(await everything(repository)) == ["taken"]

    async def test_adding_a_taken_id_with_a_new_request_id_fails(self, repository: TodoRepository) -> None:
        await repository.add(entry("taken"))

        with pytest.raises(TodoAlreadyExistsError):
            await repository.add(entry("taken", content="second"), request_id="req-new")


class TestIdempotentAdd:
    async def test_same_request_id_returns_the_first_entry_and_stores_one(self, repository: TodoRepository) -> None:
        first = entry("first", content="first content", now=at(0))
        second = entry("second", content="other content", tags=("x",), done=True, now=at(10))

        stored_first = await repository.add(first, request_id="req-1")
        stored_second = await repository.add(second, request_id="req-1")

        assert stored_first == first
        assert stored_second == first
        assert ids_of(await everything(repository)) == ["first"]
        with pytest.raises(TodoNotFoundError):
            await repository.get("second")

    async def test_same_request_id_and_same_id_returns_the_first_entry(self, repository: TodoRepository) -> None:
        first = entry("same", content="first", now=at(0))
        await repository.add(first, request_id="req-1")

        again = await repository.add(entry("same", content="retry", now=at(1)), request_id="req-1")

        assert again == first

    async def test_the_replay_returns_the_current_state(self, repository: TodoRepository) -> None:
        first = entry("first", now=at(0))
        await repository.add(first, request_id="req-1")
        changed = first.edit(at(5), done=True)
        await repository.replace(changed, expected_version=1)

        again = await repository.add(entry("other", now=at(6)), request_id="req-1")

        assert again == changed

    async def test_different_request_ids_store_different_entries(self, repository: TodoRepository) -> None:
        await repository.add(entry("one", now=at(0)), request_id="req-1")
        await repository.add(entry("two", now=at(1)), request_id="req-2")

        assert ids_of(await everything(repository)) == ["two", "one"]

    async def test_adds_without_request_id_are_not_deduplicated(self, repository: TodoRepository) -> None:
        await repository.add(entry("one", now=at(0)))
        await repository.add(entry("two", now=at(1)))

        assert ids_of(await everything(repository)) == ["two", "one"]

    async def test_request_id_of_a_deleted_entry_is_forgotten(self, repository: TodoRepository) -> None:
        await repository.add(entry("first", now=at(0)), request_id="req-1")
        await repository.delete("first")
        replacement = entry("second", now=at(1))

        returned = await repository.add(replacement, request_id="req-1")

        assert returned == replacement
        assert ids_of(await everything(repository)) == ["second"]

    async def test_a_failed_add_does_not_claim_its_request_id(self, repository: TodoRepository) -> None:
        await repository.add(entry("taken", now=at(0)))
        with pytest.raises(TodoAlreadyExistsError):
            await repository.add(entry("taken", now=at(1)), request_id="req-1")
        fresh = entry("fresh", now=at(2))

        returned = await repository.add(fresh, request_id="req-1")

        assert returned == fresh
        assert await repository.get("fresh") == fresh


class TestReplace:
    async def test_replace_at_the_expected_version_stores_the_entry(self, repository: TodoRepository) -> None:
        original = entry("todo", content="old", now=at(0))
        await repository.add(original)
        changed = original.edit(at(100), content="new", tags=["t"], done=True)

        await repository.replace(changed, expected_version=1)

        assert await repository.get("todo") == changed

    async def test_successive_replaces_follow_the_version(self, repository: TodoRepository) -> None:
        v1 = entry("todo", now=at(0))
        await repository.add(v1)
        v2 = v1.add_tag("a", at(1))
        await repository.replace(v2, expected_version=1)
        v3 = v2.add_tag("b", at(2))

        await repository.replace(v3, expected_version=2)

        assert await repository.get("todo") == v3

    async def test_replace_at_a_wrong_version_fails_and_changes_nothing(self, repository: TodoRepository) -> None:
        original = entry("todo", content="old", now=at(0))
        await repository.add(original)
        current = original.edit(at(1), content="current")
        await repository.replace(current, expected_version=1)
        lost_update = original.edit(at(2), content="lost update")

        with pytest.raises(ConcurrentModificationError) as caught:
            await repository.replace(lost_update, expected_version=1)

        assert caught.value.entry_id == "todo"
        assert await repository.get("todo") == current

    @pytest.mark.parametrize("expected_version", [0, 2, 99])
    async def test_replace_at_a_version_never_stored_fails(
        self, repository: TodoRepository, expected_version: int
    ) -> None:
        original = entry("todo", now=at(0))
        await repository.add(original)

        with pytest.raises(ConcurrentModificationError):
            await repository.replace(original.edit(at(1), done=True), expected_version=expected_version)

        assert await repository.get("todo") == original

    async def test_replace_of_a_missing_entry_is_not_found(self, repository: TodoRepository) -> None:
        ghost = entry("ghost", now=at(0)).edit(at(1), done=True)

        with pytest.raises(TodoNotFoundError):
            await repository.replace(ghost, expected_version=1)

        assert await everything(repository) == []

    async def test_replace_of_a_deleted_entry_is_not_found(self, repository: TodoRepository) -> None:
        original = entry("todo", now=at(0))
        await repository.add(original)
        await repository.delete("todo")

        with pytest.raises(TodoNotFoundError):
            await repository.replace(original.edit(at(1), done=True), expected_version=1)

    async def test_replaced_entry_keeps_its_place_in_the_order(self, repository: TodoRepository) -> None:
        older = entry("older", now=at(0))
        newer = entry("newer", now=at(10))
        await repository.add(older)
        await repository.add(newer)

        await repository.replace(older.edit(at(20), content="touched later"), expected_version=1)

        assert ids_of(await everything(repository)) == ["newer", "older"]

    @pytest.mark.needs_atomic_cas
    async def test_concurrent_replaces_at_the_same_version_let_exactly_one_win(
        self, repository: TodoRepository
    ) -> None:
        """Ten writers race with the same expected version; the store picks one winner.

        FerretDB v1 cannot guarantee this (its compare-and-set is not atomic
        under concurrent writers), hence the `needs_atomic_cas` marker.
        """
        original = entry("contended", now=at(0))
        await repository.add(original)
        candidates = [original.edit(at(1), content=f"writer {n}") for n in range(10)]

        results = await asyncio.gather(
            *(repository.replace(candidate, expected_version=1) for candidate in candidates),
            return_exceptions=True,
        )

        winners = [c for c, result in zip(candidates, results, strict=True) if result is None]
        losers = [result for result in results if result is not None]
        assert len(winners) == 1
        assert len(losers) == 9
        assert all(isinstance(loser, ConcurrentModificationError) for loser in losers)
        assert await repository.get("contended") == winners[0]


class TestDelete:
    async def test_delete_without_expected_version(self, repository: TodoRepository) -> None:
        await repository.add(entry("todo", now=at(0)).edit(at(1), done=True))

        await repository.delete("todo")

        with pytest.raises(TodoNotFoundError):
            await repository.get("todo")
        assert await everything(repository) == []

    async def test_delete_at_the_expected_version(self, repository: TodoRepository) -> None:
        original = entry("todo", now=at(0))
        await repository.add(original)
        await repository.replace(original.edit(at(1), done=True), expected_version=1)

        await repository.delete("todo", expected_version=2)

        with pytest.raises(TodoNotFoundError):
            await repository.get("todo")

    async def test_delete_at_a_wrong_version_keeps_the_entry(self, repository: TodoRepository) -> None:
        original = entry("todo", now=at(0))
        await repository.add(original)
        current = original.edit(at(1), done=True)
        await repository.replace(current, expected_version=1)

        with pytest.raises(ConcurrentModificationError):
            await repository.delete("todo", expected_version=1)

        assert await repository.get("todo") == current

    @pytest.mark.parametrize("expected_version", [None, 1])
    async def test_delete_of_a_missing_entry_is_not_found(
        self, repository: TodoRepository, expected_version: int | None
    ) -> None:
        with pytest.raises(TodoNotFoundError):
            await repository.delete("missing", expected_version=expected_version)

    async def test_delete_twice_is_not_found_the_second_time(self, repository: TodoRepository) -> None:
        await repository.add(entry("todo"))
        await repository.delete("todo")

        with pytest.raises(TodoNotFoundError):
            await repository.delete("todo")

    async def test_delete_leaves_the_other_entries(self, repository: TodoRepository) -> None:
        for n in range(3):
            await repository.add(entry(f"todo-{n}", now=at(n)))

        await repository.delete("todo-1")

        assert ids_of(await everything(repository)) == ["todo-2", "todo-0"]

    async def test_a_deleted_id_can_be_added_again(self, repository: TodoRepository) -> None:
        await repository.add(entry("todo", content="first", now=at(0)))
        await repository.delete("todo")
        again = entry("todo", content="second", now=at(1))

        await repository.add(again)

        assert await repository.get("todo") == again


class TestListOrder:
    @pytest.fixture
    async def ordered(self, repository: TodoRepository) -> list[str]:
        """Entries added out of order, three of them sharing one creation time."""
        for entry_id, moment in [
            ("m-tie", at(10)),
            ("a-oldest", at(0)),
            ("z-newest", at(20)),
            ("b-tie", at(10)),
            ("y-tie", at(10)),
            ("c-1ms-later", at(11)),
        ]:
            await repository.add(entry(entry_id, now=moment))
        return ["z-newest", "c-1ms-later", "y-tie", "m-tie", "b-tie", "a-oldest"]

    async def test_newest_first_then_id_descending(self, repository: TodoRepository, ordered: list[str]) -> None:
        assert ids_of(await everything(repository)) == ordered

    async def test_an_empty_repository_lists_nothing(self, repository: TodoRepository) -> None:
        assert await repository.list(ListQuery(limit=10)) == []

    @pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 100])
    async def test_limit_returns_the_newest_entries(
        self, repository: TodoRepository, ordered: list[str], limit: int
    ) -> None:
        assert ids_of(await repository.list(ListQuery(limit=limit))) == ordered[:limit]

    async def test_limit_zero_returns_nothing(self, repository: TodoRepository, ordered: list[str]) -> None:
        # ListQuery promises "at most `limit` entries come back".
        assert await repository.list(ListQuery(limit=0)) == []

    @pytest.mark.parametrize("position", range(6))
    async def test_after_excludes_the_cursor_entry_and_everything_newer(
        self, repository: TodoRepository, ordered: list[str], position: int
    ) -> None:
        cursor_entry = await repository.get(ordered[position])
        after = Cursor(cursor_entry.created_at, cursor_entry.id)

        listed = await repository.list(ListQuery(limit=100, after=after))

        assert ids_of(listed) == ordered[position + 1 :]

    async def test_after_and_limit_together(self, repository: TodoRepository, ordered: list[str]) -> None:
        cursor_entry = await repository.get("c-1ms-later")

        listed = await repository.list(ListQuery(limit=2, after=Cursor(cursor_entry.created_at, cursor_entry.id)))

        assert ids_of(listed) == ["y-tie", "m-tie"]

    async def test_after_a_cursor_whose_entry_is_gone(self, repository: TodoRepository, ordered: list[str]) -> None:
        cursor_entry = await repository.get("m-tie")
        await repository.delete("m-tie")

        listed = await repository.list(ListQuery(limit=100, after=Cursor(cursor_entry.created_at, "m-tie")))

        assert ids_of(listed) == ["b-tie", "a-oldest"]

    async def test_after_a_cursor_between_ids_at_a_tied_time(
        self, repository: TodoRepository, ordered: list[str]
    ) -> None:
        listed = await repository.list(ListQuery(limit=100, after=Cursor(at(10), "n-not-stored")))

        assert ids_of(listed) == ["m-tie", "b-tie", "a-oldest"]

    async def test_after_a_cursor_in_another_time_zone_means_the_same_instant(
        self, repository: TodoRepository, ordered: list[str]
    ) -> None:
        same_instant = at(10).astimezone(timezone(timedelta(hours=2)))

        listed = await repository.list(ListQuery(limit=100, after=Cursor(same_instant, "m-tie")))

        assert ids_of(listed) == ["b-tie", "a-oldest"]


class TestListFilters:
    @pytest.fixture
    async def stored(self, repository: TodoRepository) -> None:
        rows: list[tuple[str, str, tuple[str, ...], bool]] = [
            ("plain", "Buy MILK and abc", ("home", "shop"), False),
            ("dots", "the a.c adapter", ("work",), True),
            ("where", "run $where this.x == 1", ("work", "shop"), False),
            ("ne", 'matches {"$ne": 1} text', ("home",), True),
            ("slash", "C:\\temp\\file and .* star", ("home", "work", "shop"), False),
        ]
        for n, (entry_id, content, tags, done) in enumerate(rows):
            await repository.add(entry(entry_id, content=content, tags=tags, done=done, now=at(n)))

    async def _ids(self, repository: TodoRepository, **query: object) -> list[str]:
        search = query.get("search", "")
        tags = query.get("tags", frozenset())
        done = query.get("done")
        assert isinstance(search, str)
        assert isinstance(tags, frozenset)
        assert done is None or isinstance(done, bool)
        return ids_of(await repository.list(ListQuery(limit=100, search=search, tags=tags, done=done)))

    @pytest.mark.usefixtures("stored")
    async def test_search_is_case_insensitive(self, repository: TodoRepository) -> None:
        assert await self._ids(repository, search="milk") == ["plain"]
        assert await self._ids(repository, search="bUy mIlK") == ["plain"]
        assert await self._ids(repository, search="C:\\TEMP") == ["slash"]

    @pytest.mark.usefixtures("stored")
    async def test_search_is_a_substring_anywhere(self, repository: TodoRepository) -> None:
        assert await self._ids(repository, search="ilk and a") == ["plain"]

    @pytest.mark.usefixtures("stored")
    @pytest.mark.parametrize(
        ("search", "expected"),
        [
            ("a.c", ["dots"]),
            ("abc", ["plain"]),
            (".*", ["slash"]),
            ("$where", ["where"]),
            ('{"$ne": 1}', ["ne"]),
            ('{"$ne": 2}', []),
            ("\\", ["slash"]),
            ("\\t", ["slash"]),
            ("\\d", []),
            ("^buy", []),
            ("abc$", []),
            ("milk|adapter", []),
            ("[a-z]", []),
            ("(", []),
            ("this.x == 1", ["where"]),
        ],
    )
    async def test_search_is_plain_text_never_a_pattern(
        self, repository: TodoRepository, search: str, expected: list[str]
    ) -> None:
        assert await self._ids(repository, search=search) == expected

    @pytest.mark.usefixtures("stored")
    async def test_tags_must_all_be_present(self, repository: TodoRepository) -> None:
        assert await self._ids(repository, tags=frozenset({"home"})) == ["slash", "ne", "plain"]
        assert await self._ids(repository, tags=frozenset({"work", "shop"})) == ["slash", "where"]
        assert await self._ids(repository, tags=frozenset({"home", "work", "shop"})) == ["slash"]
        assert await self._ids(repository, tags=frozenset({"home", "unknown"})) == []

    @pytest.mark.usefixtures("stored")
    async def test_done_filter(self, repository: TodoRepository) -> None:
        assert await self._ids(repository, done=True) == ["ne", "dots"]
        assert await self._ids(repository, done=False) == ["slash", "where", "plain"]
        assert await self._ids(repository, done=None) == ["slash", "ne", "where", "dots", "plain"]

    @pytest.mark.usefixtures("stored")
    async def test_filters_combine(self, repository: TodoRepository) -> None:
        assert await self._ids(repository, search="R", tags=frozenset({"work"}), done=False) == [
            "slash",
            "where",
        ]
        assert await self._ids(repository, search="temp", tags=frozenset({"shop"}), done=True) == []
        assert await self._ids(repository, search="text", tags=frozenset({"home"}), done=True) == ["ne"]

    @pytest.mark.usefixtures("stored")
    async def test_limit_counts_matches_only(self, repository: TodoRepository) -> None:
        listed = await repository.list(ListQuery(limit=2, tags=frozenset({"home"})))

        assert ids_of(listed) == ["slash", "ne"]

    @pytest.mark.usefixtures("stored")
    async def test_filters_apply_after_the_cursor(self, repository: TodoRepository) -> None:
        cursor_entry = await repository.get("slash")

        listed = await repository.list(
            ListQuery(limit=100, tags=frozenset({"home"}), after=Cursor(cursor_entry.created_at, "slash"))
        )

        assert ids_of(listed) == ["ne", "plain"]
