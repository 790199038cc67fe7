"""A typed async client for todo.v1.TodoService (work in progress)."""
