"""TodoEntryService use cases against the in-memory repository."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.application.page_token import PageTokenCodec
from service.application.todo_entry import (
    MAX_MASK_PATHS,
    CreateTodo,
    ListTodos,
    TodoDraft,
    TodoEntryService,
    TodoPage,
    UpdateTodo,
)
from service.domain.errors import (
    ConcurrentModificationError,
    TodoAlreadyExistsError,
    TodoNotFoundError,
    ValidationError,
)
from service.domain.todo_entry import TodoEntry
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from tests.support.fakes import FakeClock, SequentialIds


@pytest.fixture
def repository() -> InMemoryTodoRepository:
    return InMemoryTodoRepository()


@pytest.fixture
def service(repository: InMemoryTodoRepository, clock: FakeClock, ids: SequentialIds) -> TodoEntryService:
    return TodoEntryService(repository, PageTokenCodec(b"k"), clock, ids)


MAX_PAGES = 200  # a bound on every paging loop, so that a paging bug fails instead of hanging


def fields_of(error: ValidationError) -> list[str]:
    return [violation.field for violation in error.violations]


async def create(
    service: TodoEntryService,
    *,
    content: str = "buy milk",
    tags: tuple[str, ...] = (),
    done: bool = False,
    todo_id: str = "",
    request_id: str = "",
) -> TodoEntry:
    return await service.create(
        CreateTodo(TodoDraft(content=content, tags=tags, done=done), todo_id=todo_id, request_id=request_id)
    )


async def list_all(service: TodoEntryService, page_size: int = 500, **filters: object) -> list[TodoEntry]:
    """Every entry matching the filters, following page tokens to the end."""
    search = filters.get("search", "")
    tags = filters.get("tags", ())
    done = filters.get("done")
    assert isinstance(search, str)
    assert isinstance(tags, tuple)
    assert done is None or isinstance(done, bool)
    entries: list[TodoEntry] = []
    token = ""
    for _ in range(MAX_PAGES):
        page = await service.list(ListTodos(page_size=page_size, page_token=token, search=search, tags=tags, done=done))
        entries.extend(page.entries)
        token = page.next_page_token
        if not token:
            return entries
    raise AssertionError(f"paging did not end within {MAX_PAGES} pages")


def ids_of(entries: list[TodoEntry]) -> list[str]:
    return [entry.id for entry in entries]


class TestCreate:
    async def test_create_without_todo_id_uses_a_generated_id(self, service: TodoEntryService) -> None:
        entry = await create(service, content="  buy milk ", tags=("Home",), done=True)

        assert entry.id == "id-0001"
        assert entry.content == "buy milk"
        assert entry.tags == frozenset({"home"})
        assert entry.done is True
        assert entry.version == 1

    async def test_create_uses_the_clock(self, service: TodoEntryService, clock: FakeClock) -> None:
        clock.advance(timedelta(minutes=5))

        entry = await create(service)

        assert entry.created_at == clock.current
        assert entry.updated_at == clock.current

    async def test_create_with_todo_id_uses_it(self, service: TodoEntryService) -> None:
        entry = await create(service, todo_id="my-todo")

        assert entry.id == "my-todo"
        assert (await service.get("my-todo")) == entry

    async def test_created_entry_can_be_read_back(self, service: TodoEntryService) -> None:
        entry = await create(service)

        assert (await service.get(entry.id)) == entry

    async def test_a_taken_todo_id_is_rejected(self, service: TodoEntryService) -> None:
        await create(service, todo_id="my-todo", content="first")

        with pytest.raises(TodoAlreadyExistsError) as caught:
            await create(service, todo_id="my-todo", content="second")

        assert caught.value.entry_id == "my-todo"
        assert (await service.get("my-todo")).content == "first"

    async def test_same_request_id_twice_returns_the_same_entry(
        self, service: TodoEntryService, clock: FakeClock
    ) -> None:
        first = await create(service, content="first", request_id="req-1")
        clock.advance()

        second = await create(service, content="second", request_id="req-1")

        assert second == first
        assert ids_of(await list_all(service)) == [first.id]

    async def test_same_request_id_with_other_todo_id_returns_the_first_entry(self, service: TodoEntryService) -> None:
        first = await create(service, todo_id="one", request_id="req-1")

        second = await create(service, todo_id="two", request_id="req-1")

        assert second == first
        with pytest.raises(TodoNotFoundError):
            await service.get("two")

    async def test_different_request_ids_create_different_entries(self, service: TodoEntryService) -> None:
        await create(service, request_id="req-1")
        await create(service, request_id="req-2")

        assert len(await list_all(service)) == 2

    @pytest.mark.parametrize("request_id", ["has space", "x" * 129, "slash/not-allowed", "ü"])
    async def test_a_bad_request_id_is_rejected(self, service: TodoEntryService, request_id: str) -> None:
        with pytest.raises(ValidationError) as caught:
            await create(service, request_id=request_id)

        assert fields_of(caught.value) == ["request_id"]
        assert await list_all(service) == []

    async def test_a_request_id_of_128_allowed_characters_is_accepted(self, service: TodoEntryService) -> None:
        request_id = ("Aa0._:-" * 19)[:128]

        entry = await create(service, request_id=request_id)

        assert (await create(service, content="again", request_id=request_id)) == entry

    async def test_a_bad_todo_id_is_rejected(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await create(service, todo_id="Bad_Id")

        assert fields_of(caught.value) == ["todo_id"]

    async def test_field_violations_are_nested_under_todo(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await create(service, content="  ", tags=("ok", "-bad"))

        assert fields_of(caught.value) == ["todo.content", "todo.tags[1]"]

    async def test_every_bad_field_is_reported_at_once(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await create(service, content="", todo_id="9", request_id="bad id")

        assert sorted(fields_of(caught.value)) == ["request_id", "todo.content", "todo_id"]


class TestGet:
    async def test_a_missing_entry_is_not_found(self, service: TodoEntryService) -> None:
        with pytest.raises(TodoNotFoundError) as caught:
            await service.get("nope")

        assert caught.value.entry_id == "nope"

    async def test_an_empty_id_is_rejected(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await service.get("")

        assert fields_of(caught.value) == ["id"]

    async def test_an_overlong_id_is_rejected(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await service.get("x" * 129)

        assert fields_of(caught.value) == ["id"]


class TestUpdate:
    async def test_update_content(self, service: TodoEntryService, clock: FakeClock) -> None:
        entry = await create(service, content="old", tags=("a",), done=False)
        clock.advance()

        updated = await service.update(
            UpdateTodo(entry.id, TodoDraft(content=" new ", tags=("z",), done=True), ("content",))
        )

        assert updated.content == "new"
        assert updated.tags == frozenset({"a"})
        assert updated.done is False
        assert updated.version == 2
        assert updated.updated_at == clock.current
        assert (await service.get(entry.id)) == updated

    async def test_update_tags(self, service: TodoEntryService) -> None:
        entry = await create(service, content="old", tags=("a",))

        updated = await service.update(UpdateTodo(entry.id, TodoDraft(content="x", tags=("B", "c")), ("tags",)))

        assert updated.tags == frozenset({"b", "c"})
        assert updated.content == "old"

    async def test_update_tags_to_empty(self, service: TodoEntryService) -> None:
        entry = await create(service, tags=("a", "b"))

        updated = await service.update(UpdateTodo(entry.id, TodoDraft(), ("tags",)))

        assert updated.tags == frozenset()

    async def test_update_done(self, service: TodoEntryService) -> None:
        entry = await create(service, content="old")

        updated = await service.update(UpdateTodo(entry.id, TodoDraft(content="", done=True), ("done",)))

        assert updated.done is True
        assert updated.content == "old"

    async def test_update_star_replaces_every_mutable_field(self, service: TodoEntryService) -> None:
        entry = await create(service, content="old", tags=("a",), done=True)

        updated = await service.update(UpdateTodo(entry.id, TodoDraft(content="new", done=False), ("*",)))

        assert (updated.content, updated.tags, updated.done) == ("new", frozenset(), False)
        assert updated.id == entry.id
        assert updated.created_at == entry.created_at

    async def test_an_unknown_path_is_rejected_with_its_index(self, service: TodoEntryService) -> None:
        entry = await create(service)

        with pytest.raises(ValidationError) as caught:
            await service.update(UpdateTodo(entry.id, TodoDraft(content="x"), ("id",)))

        assert fields_of(caught.value) == ["update_mask.paths[0]"]

    async def test_only_the_unknown_paths_are_reported(self, service: TodoEntryService) -> None:
        entry = await create(service)

        with pytest.raises(ValidationError) as caught:
            await service.update(
                UpdateTodo(entry.id, TodoDraft(content="x"), ("content", "etag", "done", "create_time"))
            )

        assert fields_of(caught.value) == ["update_mask.paths[1]", "update_mask.paths[3]"]
        assert (await service.get(entry.id)) == entry

    async def test_paths_the_transport_marks_ignored_are_skipped(self, service: TodoEntryService) -> None:
        entry = await create(service)
        ignored = frozenset({"etag", "create_time"})

        updated = await service.update(
            UpdateTodo(entry.id, TodoDraft(done=True), ("etag", "done", "create_time"), ignored_paths=ignored)
        )

        assert updated.done

    async def test_too_many_paths_is_one_violation(self, service: TodoEntryService) -> None:
        entry = await create(service)

        with pytest.raises(ValidationError) as caught:
            await service.update(UpdateTodo(entry.id, TodoDraft(content="x"), ("nope",) * (MAX_MASK_PATHS + 1)))

        assert fields_of(caught.value) == ["update_mask.paths"]

    async def test_invalid_new_content_is_nested_under_todo(self, service: TodoEntryService) -> None:
        entry = await create(service)

        with pytest.raises(ValidationError) as caught:
            await service.update(UpdateTodo(entry.id, TodoDraft(content="  "), ("content",)))

        assert fields_of(caught.value) == ["todo.content"]

    async def test_empty_id_is_rejected_as_todo_id(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await service.update(UpdateTodo("", TodoDraft(content="x"), ("content",)))

        assert fields_of(caught.value) == ["todo.id"]

    async def test_a_missing_entry_is_not_found(self, service: TodoEntryService) -> None:
        with pytest.raises(TodoNotFoundError):
            await service.update(UpdateTodo("nope", TodoDraft(content="x"), ("content",)))

    async def test_the_current_etag_lets_the_update_through(self, service: TodoEntryService) -> None:
        entry = await create(service)

        updated = await service.update(UpdateTodo(entry.id, TodoDraft(content="new"), ("content",), etag=entry.etag))

        assert updated.content == "new"

    async def test_a_stale_etag_is_a_concurrent_modification(self, service: TodoEntryService) -> None:
        entry = await create(service)
        current = await service.update(UpdateTodo(entry.id, TodoDraft(done=True), ("done",)))

        with pytest.raises(ConcurrentModificationError):
            await service.update(UpdateTodo(entry.id, TodoDraft(content="new"), ("content",), etag=entry.etag))

        assert (await service.get(entry.id)) == current

    async def test_a_no_op_update_keeps_the_etag(self, service: TodoEntryService, clock: FakeClock) -> None:
        entry = await create(service, content="same", tags=("a",))
        clock.advance()

        updated = await service.update(
            UpdateTodo(entry.id, TodoDraft(content=" same ", tags=("A",), done=False), ("*",))
        )

        assert updated.etag == entry.etag
        assert updated == entry

    async def test_an_update_without_paths_returns_the_entry_unchanged(
        self, service: TodoEntryService, clock: FakeClock
    ) -> None:
        entry = await create(service, content="keep")
        clock.advance()

        updated = await service.update(UpdateTodo(entry.id, TodoDraft(content="ignored", done=True), ()))

        assert updated == entry
        assert (await service.get(entry.id)) == entry


class TestDelete:
    async def test_an_id_created_again_in_the_same_millisecond_never_repeats_an_etag(
        self, service: TodoEntryService
    ) -> None:
        # The clock is frozen: same id, version 1 and create_time for both incarnations.
        old = await service.create(CreateTodo(todo=TodoDraft(content="x"), todo_id="a"))
        await service.delete("a", "")
        new = await service.create(CreateTodo(todo=TodoDraft(content="y"), todo_id="a"))

        assert new.etag != old.etag
        with pytest.raises(ConcurrentModificationError):
            await service.delete("a", old.etag)
        assert await service.get("a") == new

    async def test_delete_without_etag(self, service: TodoEntryService) -> None:
        entry = await create(service)

        await service.delete(entry.id)

        with pytest.raises(TodoNotFoundError):
            await service.get(entry.id)

    async def test_delete_with_the_current_etag(self, service: TodoEntryService) -> None:
        entry = await create(service)

        await service.delete(entry.id, etag=entry.etag)

        with pytest.raises(TodoNotFoundError):
            await service.get(entry.id)

    async def test_delete_with_a_stale_etag_keeps_the_entry(self, service: TodoEntryService) -> None:
        entry = await create(service)
        current = await service.add_tag(entry.id, "x")

        with pytest.raises(ConcurrentModificationError):
            await service.delete(entry.id, etag=entry.etag)

        assert (await service.get(entry.id)) == current

    @pytest.mark.parametrize("etag", ["", '"1-0"'])
    async def test_delete_of_a_missing_entry_is_not_found(self, service: TodoEntryService, etag: str) -> None:
        with pytest.raises(TodoNotFoundError):
            await service.delete("nope", etag=etag)

    async def test_delete_with_empty_id_is_rejected(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await service.delete("")

        assert fields_of(caught.value) == ["id"]

    async def test_a_deleted_todo_id_can_be_used_again(self, service: TodoEntryService) -> None:
        await create(service, todo_id="reuse", content="first")
        await service.delete("reuse")

        again = await create(service, todo_id="reuse", content="second")

        assert again.content == "second"


class TestTags:
    async def test_add_tag_adds_a_normalised_tag(self, service: TodoEntryService) -> None:
        entry = await create(service)

        updated = await service.add_tag(entry.id, " Urgent ")

        assert updated.tags == frozenset({"urgent"})
        assert updated.version == 2
        assert (await service.get(entry.id)) == updated

    async def test_add_tag_of_a_present_tag_keeps_the_etag(self, service: TodoEntryService) -> None:
        entry = await create(service, tags=("urgent",))

        again = await service.add_tag(entry.id, "URGENT")

        assert again.etag == entry.etag
        assert again == entry

    async def test_remove_tag_removes_the_tag(self, service: TodoEntryService) -> None:
        entry = await create(service, tags=("a", "b"))

        updated = await service.remove_tag(entry.id, "A")

        assert updated.tags == frozenset({"b"})
        assert updated.etag != entry.etag

    async def test_remove_tag_of_an_absent_tag_keeps_the_etag(self, service: TodoEntryService) -> None:
        entry = await create(service, tags=("a",))

        again = await service.remove_tag(entry.id, "b")

        assert again.etag == entry.etag

    async def test_add_tag_twice_changes_the_etag_once(self, service: TodoEntryService) -> None:
        entry = await create(service)

        first = await service.add_tag(entry.id, "x")
        second = await service.add_tag(entry.id, "x")

        assert first.etag != entry.etag
        assert second.etag == first.etag

    async def test_add_tag_rejects_an_invalid_tag(self, service: TodoEntryService) -> None:
        entry = await create(service)

        with pytest.raises(ValidationError) as caught:
            await service.add_tag(entry.id, "no spaces")

        assert fields_of(caught.value) == ["tag"]

    async def test_add_tag_beyond_the_limit_is_rejected(self, service: TodoEntryService) -> None:
        entry = await create(service, tags=tuple(f"t{i}" for i in range(32)))

        with pytest.raises(ValidationError):
            await service.add_tag(entry.id, "t32")

    async def test_add_tag_to_a_missing_entry_is_not_found(self, service: TodoEntryService) -> None:
        with pytest.raises(TodoNotFoundError):
            await service.add_tag("nope", "x")

    async def test_remove_tag_with_empty_id_is_rejected(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await service.remove_tag("", "x")

        assert fields_of(caught.value) == ["id"]


class FlakyRepository(InMemoryTodoRepository):
    """The first `conflicts` replaces lose a race against another writer.

    With `other_writer_wins`, the other writer's change is stored first (the
    stored version moves on); without it, the conflict is reported while the
    stored entry stays as it was.
    """

    def __init__(self, conflicts: int, other_writer_wins: bool = True) -> None:
        super().__init__()
        self.conflicts = conflicts
        self.other_writer_wins = other_writer_wins
        self.replace_calls = 0

    async def replace(self, entry: TodoEntry, expected_version: int) -> None:
        self.replace_calls += 1
        if self.replace_calls <= self.conflicts:
            if self.other_writer_wins:
                stored = await self.get(entry.id)
                await super().replace(stored.edit(stored.updated_at, content="other writer"), stored.version)
            raise ConcurrentModificationError(entry.id)
        await super().replace(entry, expected_version)


class TestConcurrentWriters:
    @pytest.fixture
    def flaky(self) -> FlakyRepository:
        return FlakyRepository(conflicts=1)

    @pytest.fixture
    def flaky_service(self, flaky: FlakyRepository, clock: FakeClock, ids: SequentialIds) -> TodoEntryService:
        return TodoEntryService(flaky, PageTokenCodec(b"k"), clock, ids)

    async def test_add_tag_without_etag_retries_on_a_conflict_and_succeeds(
        self, flaky_service: TodoEntryService, flaky: FlakyRepository
    ) -> None:
        entry = await create(flaky_service, content="mine")

        updated = await flaky_service.add_tag(entry.id, "x")

        assert flaky.replace_calls == 2
        assert updated.tags == frozenset({"x"})
        assert updated.content == "other writer"  # built on the other writer's state
        assert updated.version == 3
        assert (await flaky_service.get(entry.id)) == updated

    async def test_remove_tag_without_etag_retries_on_a_conflict(
        self, flaky_service: TodoEntryService, flaky: FlakyRepository
    ) -> None:
        entry = await create(flaky_service, tags=("x", "y"))

        updated = await flaky_service.remove_tag(entry.id, "x")

        assert flaky.replace_calls == 2
        assert updated.tags == frozenset({"y"})

    async def test_retries_give_up_after_a_few_attempts(self, clock: FakeClock, ids: SequentialIds) -> None:
        always = FlakyRepository(conflicts=1_000)
        service = TodoEntryService(always, PageTokenCodec(b"k"), clock, ids)
        entry = await create(service)

        with pytest.raises(ConcurrentModificationError):
            await service.add_tag(entry.id, "x")

        assert 1 < always.replace_calls < 20

    async def test_update_with_etag_does_not_retry(
        self, flaky_service: TodoEntryService, flaky: FlakyRepository
    ) -> None:
        entry = await create(flaky_service, content="mine")

        with pytest.raises(ConcurrentModificationError):
            await flaky_service.update(UpdateTodo(entry.id, TodoDraft(content="new"), ("content",), etag=entry.etag))

        assert flaky.replace_calls == 1
        assert (await flaky_service.get(entry.id)).content == "other writer"

    async def test_update_with_etag_reports_even_a_conflict_that_left_the_entry_as_it_was(
        self, clock: FakeClock, ids: SequentialIds
    ) -> None:
        repository = FlakyRepository(conflicts=1, other_writer_wins=False)
        service = TodoEntryService(repository, PageTokenCodec(b"k"), clock, ids)
        entry = await create(service, content="mine")

        with pytest.raises(ConcurrentModificationError):
            await service.update(UpdateTodo(entry.id, TodoDraft(content="new"), ("content",), etag=entry.etag))

        assert repository.replace_calls == 1
        assert (await service.get(entry.id)) == entry

    async def test_add_tag_without_etag_retries_after_a_conflict_that_left_the_entry_as_it_was(
        self, clock: FakeClock, ids: SequentialIds
    ) -> None:
        repository = FlakyRepository(conflicts=1, other_writer_wins=False)
        service = TodoEntryService(repository, PageTokenCodec(b"k"), clock, ids)
        entry = await create(service, content="mine")

        updated = await service.add_tag(entry.id, "x")

        assert repository.replace_calls == 2
        assert updated.tags == frozenset({"x"})
        assert updated.version == 2


class TestListOrderAndSize:
    async def test_newest_first_by_create_time_then_id(self, service: TodoEntryService, clock: FakeClock) -> None:
        a = await create(service, todo_id="b-first")
        b = await create(service, todo_id="a-same-time")
        c = await create(service, todo_id="c-same-time")
        clock.advance()
        d = await create(service, todo_id="a-later")
        clock.advance()
        e = await create(service, todo_id="z-latest")

        page = await service.list(ListTodos())

        assert ids_of(page.entries) == [e.id, d.id, c.id, a.id, b.id]
        assert page.next_page_token == ""

    async def test_empty_store_lists_nothing(self, service: TodoEntryService) -> None:
        assert await service.list(ListTodos()) == TodoPage([], "")

    async def test_page_size_0_means_50(self, service: TodoEntryService) -> None:
        for _ in range(51):
            await create(service)

        page = await service.list(ListTodos(page_size=0))

        assert len(page.entries) == 50
        assert page.next_page_token != ""

    async def test_page_size_above_500_means_500(self, service: TodoEntryService) -> None:
        for _ in range(502):
            await create(service)

        page = await service.list(ListTodos(page_size=10_000))

        assert len(page.entries) == 500
        assert page.next_page_token != ""
        rest = await service.list(ListTodos(page_size=10_000, page_token=page.next_page_token))
        assert len(rest.entries) == 2
        assert rest.next_page_token == ""

    async def test_a_negative_page_size_is_rejected(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await service.list(ListTodos(page_size=-1))

        assert fields_of(caught.value) == ["page_size"]

    async def test_an_exactly_full_page_has_no_token(self, service: TodoEntryService) -> None:
        for _ in range(3):
            await create(service)

        page = await service.list(ListTodos(page_size=3))

        assert len(page.entries) == 3
        assert page.next_page_token == ""

    async def test_an_overlong_search_is_rejected(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await service.list(ListTodos(search="x" * 257))

        assert fields_of(caught.value) == ["search"]

    async def test_a_search_of_256_characters_is_accepted(self, service: TodoEntryService) -> None:
        await create(service, content="x" * 300)

        assert len((await service.list(ListTodos(search="x" * 256))).entries) == 1

    async def test_invalid_filter_tags_are_rejected(self, service: TodoEntryService) -> None:
        with pytest.raises(ValidationError) as caught:
            await service.list(ListTodos(tags=("ok", "not ok")))

        assert fields_of(caught.value) == ["tags[1]"]


class TestListFilters:
    @pytest.fixture
    async def entries(self, service: TodoEntryService, clock: FakeClock) -> dict[str, TodoEntry]:
        made: dict[str, TodoEntry] = {}
        specs: list[tuple[str, str, tuple[str, ...], bool]] = [
            ("milk", "Buy MILK at the shop", ("home", "shop"), False),
            ("bread", "buy bread", ("shop",), True),
            ("regex", "match .* literally (really)", ("work",), False),
            ("plain", "abc def", ("home", "work"), True),
        ]
        for todo_id, content, tags, done in specs:
            made[todo_id] = await create(service, todo_id=todo_id, content=content, tags=tags, done=done)
            clock.advance()
        return made

    async def test_search_is_a_case_insensitive_substring(
        self, service: TodoEntryService, entries: dict[str, TodoEntry]
    ) -> None:
        assert ids_of(await list_all(service, search="bUy")) == ["bread", "milk"]
        assert ids_of(await list_all(service, search="milk at")) == ["milk"]

    @pytest.mark.parametrize(
        ("search", "expected"),
        [
            (".*", ["regex"]),
            ("(", ["regex"]),
            ("(REALLY)", ["regex"]),
            ("abc.*", []),
            ("^abc", []),
            ("[a-z]", []),
            ("abc|milk", []),
        ],
    )
    async def test_search_matches_regex_metacharacters_literally(
        self, service: TodoEntryService, entries: dict[str, TodoEntry], search: str, expected: list[str]
    ) -> None:
        assert ids_of(await list_all(service, search=search)) == expected

    async def test_search_dot_does_not_match_any_character(
        self, service: TodoEntryService, entries: dict[str, TodoEntry]
    ) -> None:
        assert await list_all(service, search="a.c") == []

    async def test_tags_filter_requires_every_tag(
        self, service: TodoEntryService, entries: dict[str, TodoEntry]
    ) -> None:
        assert ids_of(await list_all(service, tags=("home",))) == ["plain", "milk"]
        assert ids_of(await list_all(service, tags=("home", "work"))) == ["plain"]
        assert ids_of(await list_all(service, tags=("home", "nothing"))) == []

    async def test_tags_filter_is_normalised(self, service: TodoEntryService, entries: dict[str, TodoEntry]) -> None:
        assert ids_of(await list_all(service, tags=(" SHOP ",))) == ["bread", "milk"]

    @pytest.mark.parametrize(
        ("done", "expected"),
        [(True, ["plain", "bread"]), (False, ["regex", "milk"]), (None, ["plain", "regex", "bread", "milk"])],
    )
    async def test_done_filter(
        self,
        service: TodoEntryService,
        entries: dict[str, TodoEntry],
        done: bool | None,
        expected: list[str],
    ) -> None:
        assert ids_of(await list_all(service, done=done)) == expected

    async def test_filters_combine(self, service: TodoEntryService, entries: dict[str, TodoEntry]) -> None:
        assert ids_of(await list_all(service, search="buy", tags=("shop",), done=False)) == ["milk"]

    async def test_filtered_paging_returns_only_matches_page_by_page(
        self, service: TodoEntryService, entries: dict[str, TodoEntry]
    ) -> None:
        assert ids_of(await list_all(service, page_size=1, tags=("shop",))) == ["bread", "milk"]


class TestPaging:
    async def _create_many(self, service: TodoEntryService, clock: FakeClock, count: int) -> list[TodoEntry]:
        made = []
        for index in range(count):
            if index % 3 == 0:
                clock.advance()
            made.append(await create(service, content=f"entry {index}"))
        return made

    async def test_paging_by_3_returns_every_entry_exactly_once_in_order(
        self, service: TodoEntryService, clock: FakeClock
    ) -> None:
        made = await self._create_many(service, clock, 10)
        pages: list[TodoPage] = []
        token = ""
        for _ in range(MAX_PAGES):
            page = await service.list(ListTodos(page_size=3, page_token=token))
            pages.append(page)
            token = page.next_page_token
            if not token:
                break

        assert [len(page.entries) for page in pages] == [3, 3, 3, 1]
        assert [page.next_page_token == "" for page in pages] == [False, False, False, True]
        seen = [entry for page in pages for entry in page.entries]
        expected = sorted(made, key=lambda e: (e.created_at, e.id), reverse=True)
        assert ids_of(seen) == ids_of(expected)

    async def test_entries_created_while_paging_are_never_skipped_or_repeated(
        self, service: TodoEntryService, clock: FakeClock
    ) -> None:
        before = await self._create_many(service, clock, 11)
        seen: list[str] = []
        token = ""
        for between in range(MAX_PAGES):
            page = await service.list(ListTodos(page_size=3, page_token=token))
            seen.extend(ids_of(page.entries))
            token = page.next_page_token
            if not token:
                break
            # Between pages: one entry at the same time as the newest (its id
            # sorts before the generated ones) and one at a later time.
            await create(service, todo_id=f"a-new-{between}")
            clock.advance()
            await create(service, content="later")

        assert token == ""
        assert len(seen) == len(set(seen))
        assert set(ids_of(before)) <= set(seen)

    async def test_entries_deleted_while_paging_do_not_disturb_the_rest(
        self, service: TodoEntryService, clock: FakeClock
    ) -> None:
        made = await self._create_many(service, clock, 9)
        first = await service.list(ListTodos(page_size=3))
        last_of_first_page = first.entries[-1]
        await service.delete(last_of_first_page.id)

        rest = await list_all(service, page_size=3)
        following = await service.list(ListTodos(page_size=3, page_token=first.next_page_token))

        assert ids_of(following.entries) == ids_of(rest[2:5])
        assert len(rest) == len(made) - 1

    async def test_token_may_be_reused_with_another_page_size(
        self, service: TodoEntryService, clock: FakeClock
    ) -> None:
        made = await self._create_many(service, clock, 10)
        ordered = ids_of(sorted(made, key=lambda e: (e.created_at, e.id), reverse=True))
        first = await service.list(ListTodos(page_size=2))

        rest = await service.list(ListTodos(page_size=100, page_token=first.next_page_token))

        assert ids_of(rest.entries) == ordered[2:]
        assert rest.next_page_token == ""

    async def test_token_works_twice(self, service: TodoEntryService, clock: FakeClock) -> None:
        await self._create_many(service, clock, 5)
        first = await service.list(ListTodos(page_size=2))

        again = await service.list(ListTodos(page_size=2, page_token=first.next_page_token))
        once_more = await service.list(ListTodos(page_size=2, page_token=first.next_page_token))

        assert again == once_more


class TestPageTokenChecks:
    @pytest.fixture
    async def token(self, service: TodoEntryService, clock: FakeClock) -> str:
        for index in range(5):
            clock.advance()
            await create(service, content=f"milk {index}", tags=("home",))
        page = await service.list(ListTodos(page_size=2, search="milk", tags=("home",)))
        assert page.next_page_token
        return page.next_page_token

    async def _rejected_fields(self, service: TodoEntryService, command: ListTodos) -> list[str]:
        with pytest.raises(ValidationError) as caught:
            await service.list(command)
        return fields_of(caught.value)

    async def test_the_token_with_the_same_filters_is_accepted(self, service: TodoEntryService, token: str) -> None:
        page = await service.list(ListTodos(page_size=2, page_token=token, search="milk", tags=("HOME",)))

        assert len(page.entries) == 2

    async def test_a_flipped_character_is_rejected(self, service: TodoEntryService, token: str) -> None:
        middle = len(token) // 2
        flipped = token[:middle] + ("B" if token[middle] == "A" else "A") + token[middle + 1 :]

        command = ListTodos(page_size=2, page_token=flipped, search="milk", tags=("home",))
        assert await self._rejected_fields(service, command) == ["page_token"]

    async def test_a_truncated_token_is_rejected(self, service: TodoEntryService, token: str) -> None:
        command = ListTodos(page_size=2, page_token=token[:-4], search="milk", tags=("home",))

        assert await self._rejected_fields(service, command) == ["page_token"]

    @pytest.mark.parametrize("garbage", ["garbage", "%%%", "x"])
    async def test_garbage_is_rejected(self, service: TodoEntryService, token: str, garbage: str) -> None:
        command = ListTodos(page_size=2, page_token=garbage, search="milk", tags=("home",))

        assert await self._rejected_fields(service, command) == ["page_token"]

    async def test_a_token_from_another_secret_is_rejected(
        self,
        service: TodoEntryService,
        repository: InMemoryTodoRepository,
        clock: FakeClock,
        ids: SequentialIds,
        token: str,
    ) -> None:
        other = TodoEntryService(repository, PageTokenCodec(b"other secret"), clock, ids)
        foreign = (await other.list(ListTodos(page_size=2, search="milk", tags=("home",)))).next_page_token
        assert foreign

        command = ListTodos(page_size=2, page_token=foreign, search="milk", tags=("home",))
        assert await self._rejected_fields(service, command) == ["page_token"]

    @pytest.mark.parametrize(
        ("search", "tags", "done"),
        [
            ("bread", ("home",), None),
            ("milk", ("home", "work"), None),
            ("milk", (), None),
            ("milk", ("home",), True),
            ("milk", ("home",), False),
        ],
    )
    async def test_a_token_replayed_with_other_filters_is_rejected(
        self,
        service: TodoEntryService,
        token: str,
        search: str,
        tags: tuple[str, ...],
        done: bool | None,
    ) -> None:
        command = ListTodos(page_size=2, page_token=token, search=search, tags=tags, done=done)

        assert await self._rejected_fields(service, command) == ["page_token"]
