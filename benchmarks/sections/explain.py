"""6 (MongoDB part): the plans of GetTodo and the ListTodos queries, as the repository builds them."""

from __future__ import annotations

import json
import re
from typing import Any

import pymongo
import pymongo.errors

from benchmarks import service_api

INTENDED_INDEX = {
    "GetTodo: _id": "_id_",
    "ListTodos: no filter": "newest_first",
    "ListTodos: next page (keyset)": "newest_first",
    "ListTodos: done=false": "done_newest_first",
    "ListTodos: tags=[home]": "tag_newest_first",
    "ListTodos: search": "newest_first (the regex is checked on the entries read in index order)",
    "CreateTodo replay: request_key": "request_key_unique",
}


def explain_queries(uri: str, database: str) -> dict[str, Any]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=5000)
    collection = client[database]["todos"]
    newest_first = service_api.NEWEST_FIRST
    newest = collection.find_one(sort=newest_first)
    after = service_api.EntryRef(newest["_id"], newest["create_time"]) if newest else None
    queries: dict[str, tuple[dict[str, Any], list[tuple[str, int]] | None]] = {
        "GetTodo: _id": ({"_id": "bench-get"}, None),
        "ListTodos: no filter": (service_api.list_filter(limit=51), newest_first),
        "ListTodos: next page (keyset)": (service_api.list_filter(limit=51, after=after), newest_first),
        "ListTodos: done=false": (service_api.list_filter(limit=51, done=False), newest_first),
        "ListTodos: tags=[home]": (service_api.list_filter(limit=51, tags=frozenset({"home"})), newest_first),
        "ListTodos: search": (service_api.list_filter(limit=51, search="milk"), newest_first),
        "CreateTodo replay: request_key": ({"request_key": "r:x"}, None),
    }
    plans: dict[str, Any] = {"server": {}, "indexes": sorted(collection.index_information())}
    info = client.admin.command("buildInfo")
    plans["server"] = {"version": info.get("version"), "ferretdb": info.get("ferretdbVersion")}
    for name, (query, sort) in queries.items():
        cursor = collection.find(query)
        if sort:
            cursor = cursor.sort(sort).limit(51)
        try:
            explained = cursor.explain()
        except pymongo.errors.PyMongoError as error:
            plans[name] = {"error": str(error)[:300]}
            continue
        planner = explained.get("queryPlanner", {})
        winning = planner.get("winningPlan", planner)
        plans[name] = {
            "filter": _plain(query),
            "winningPlan": _plain(winning)[:1] if isinstance(winning, list) else _plain(winning),
            "pushdown": {k: v for k, v in explained.items() if "pushdown" in k.lower()},
            "index_used": _indexes_in(winning),
            "intended_index": INTENDED_INDEX[name],
        }
    client.close()
    return plans


def _plain(value: Any) -> Any:
    """`value` with everything JSON cannot hold (datetimes, ObjectIds) as strings."""
    return json.loads(json.dumps(value, default=str))


def _indexes_in(plan: Any) -> list[str]:
    """Index names or SQLite index mentions found anywhere in a plan."""
    found: list[str] = []
    text = json.dumps(plan, default=str)
    found += re.findall(r'"indexName":\s*"([^"]+)"', text)
    found += re.findall(r"USING (?:COVERING )?INDEX (\S+)", text)
    found += re.findall(r"USING INTEGER PRIMARY KEY", text)
    if '"IXSCAN"' in text or "IDHACK" in text or "EXPRESS_IXSCAN" in text:
        found.append("IXSCAN")
    if "COLLSCAN" in text or re.search(r"\bSCAN\b(?! USING)", text):
        found.append("SCAN")
    return sorted(set(found))
