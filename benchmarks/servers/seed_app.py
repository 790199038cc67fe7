"""The seed article's design, as a yardstick (benchmark only, never shipped).

"How to build a Python backend? Part 1" builds a todo service in three layers:
a TodoEntry dataclass (domain), a repository behind an abstract interface
(infrastructure), a TodoService (application), wired by dependency-injector
and served by a FastAPI router with a pydantic schema. Here the repository is
in memory (the article starts with pickle files; the issue asks for memory so
that both sides measure the web layer, not a disk), and the router serves
`GET /todos/{id}` and `POST /todos` (JSON body validated by pydantic, the
created entry returned, which is what the service's CreateTodo does too).

    uvicorn benchmarks.servers.seed_app:app --host 127.0.0.1 --port PORT

(from the repository root, with benchmarks/.venv-fastapi's Python; it imports nothing of the
service, so it runs where the service's dependencies are not installed)
"""

from __future__ import annotations

import abc
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dependency_injector import containers, providers
from dependency_injector.wiring import Provide
from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel, Field

# -- domain ---------------------------------------------------------------


@dataclass
class TodoEntry:
    id: str
    created_at: datetime
    content: str
    tags: set[str] = field(default_factory=set)

    @classmethod
    def create_from_content(cls, content: str, tags: list[str] | None = None) -> TodoEntry:
        return cls(
            id=str(uuid.uuid4()),
            created_at=datetime.now(UTC),
            content=content,
            tags={tag.strip().lower() for tag in tags or ()},
        )

    def set_tag(self, tag: str) -> None:
        self.tags.add(tag)


class TodoEntryNotFoundError(Exception):
    pass


class ITodoEntryRepository(abc.ABC):
    @abc.abstractmethod
    def get(self, entry_id: str) -> TodoEntry: ...

    @abc.abstractmethod
    def add(self, entry: TodoEntry) -> None: ...


# -- infrastructure: the repository ---------------------------------------


class TodoEntryMemoryRepository(ITodoEntryRepository):
    def __init__(self) -> None:
        self._entries: dict[str, TodoEntry] = {}

    def get(self, entry_id: str) -> TodoEntry:
        try:
            return self._entries[entry_id]
        except KeyError:
            raise TodoEntryNotFoundError(entry_id) from None

    def add(self, entry: TodoEntry) -> None:
        self._entries[entry.id] = entry


# -- application ----------------------------------------------------------


class TodoService:
    def __init__(self, todo_repository: ITodoEntryRepository) -> None:
        self.todo_repository = todo_repository

    def add_entry(self, content: str, tags: list[str]) -> TodoEntry:
        entry = TodoEntry.create_from_content(content, tags)
        self.todo_repository.add(entry)
        return entry

    def get_entry(self, entry_id: str) -> TodoEntry:
        return self.todo_repository.get(entry_id)


class ApplicationContainer(containers.DeclarativeContainer):
    todo_entry_repository = providers.Singleton(TodoEntryMemoryRepository)
    todo_service = providers.Factory(TodoService, todo_repository=todo_entry_repository)


# -- infrastructure: the web API ------------------------------------------


class TodoEntrySchema(BaseModel):
    id: str
    content: str
    tags: list[str]
    created_at: datetime


class TodoCreateSchema(BaseModel):
    content: str = Field(min_length=1, max_length=4096)
    tags: list[str] = Field(default_factory=list, max_length=32)


# As in the article: the controller module names the service it needs, and
# wiring (`container.wire`) replaces the marker with the instance once, at
# start-up; no per-request injection.
todo_service: TodoService = Provide[ApplicationContainer.todo_service]  # type: ignore[assignment]

router = APIRouter(responses={404: {"description": "Not found"}})


def _schema(entry: TodoEntry) -> TodoEntrySchema:
    fields = asdict(entry)
    fields["tags"] = sorted(entry.tags)
    return TodoEntrySchema(**fields)


@router.get("/todos/{entry_id}", response_model=TodoEntrySchema)
async def get_todo(entry_id: str) -> TodoEntrySchema:
    try:
        return _schema(todo_service.get_entry(entry_id))
    except TodoEntryNotFoundError:
        raise HTTPException(status_code=404, detail="Not found") from None


@router.post("/todos", response_model=TodoEntrySchema, status_code=201)
async def add_todo(body: TodoCreateSchema) -> TodoEntrySchema:
    return _schema(todo_service.add_entry(body.content, body.tags))


def create_app() -> FastAPI:
    container = ApplicationContainer()
    container.wire(modules=[__name__])
    application = FastAPI()
    application.state.container = container
    application.include_router(router)
    # The entry the GET benchmark reads.
    repository = container.todo_entry_repository()
    repository.add(
        TodoEntry(id="bench-get", created_at=datetime.now(UTC), content="Buy milk and bread", tags={"home", "errands"})
    )
    return application


app = create_app()
