"""A tiny in-process Graph for unit tests: a requests adapter mounted on the client's session.

It keeps per-user licenses and answers ``$batch`` and single requests; a test scripts the
answers it wants per item with ``script`` (a function of the item returning a status or
None for the normal behaviour). Like Graph, it refuses a whole ``$batch`` whose ``dependsOn``
is not one of the three legal shapes (:func:`batch_shape_ok`) with 400.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

import requests
from requests.adapters import BaseAdapter

from batch.config import Settings
from batch.graph.client import GraphClient, RetryPolicy

BASE = "https://graph.test/v1.0"
MIXED_BATCH = "Batch should be either fully sequential or fully parallel"


def batch_shape_ok(items: list[dict[str, Any]]) -> bool:
    """Whether a ``$batch``'s ``dependsOn`` is one Graph accepts (graph-reference.md 1, 11).

    Parallel: no item depends on another. Serial: every item after the first depends on the
    one before it. Same: every item that states a dependency states the same one. Always one
    dependency at most, on an earlier item.
    """
    ids = [str(item["id"]).lower() for item in items]
    targets: list[str | None] = []
    for index, item in enumerate(items):
        deps = [str(d).lower() for d in item.get("dependsOn") or []]
        if len(deps) > 1 or (deps and deps[0] not in ids[:index]):
            return False
        targets.append(deps[0] if deps else None)
    stated = {t for t in targets if t is not None}
    if not stated or len(stated) == 1:
        return True  # parallel, or all on the same one
    return targets[0] is None and all(t == ids[i] for i, t in enumerate(targets[1:]))


class FakeGraph(BaseAdapter):
    """Graph with users and licenses, plus scripted faults."""

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[str, dict[str, Any]] = {}
        self.applied: dict[str, int] = {}
        self.log: list[tuple[float, str, str, Any]] = []  # (time, method, url, item ids)
        self.batches: list[list[dict[str, Any]]] = []  # every $batch's items, as sent
        self.item_log: list[tuple[float, str, int]] = []  # (time answered, op url, status)
        self.script: Callable[[dict[str, Any]], Any] | None = None
        self.outer: Callable[[list[dict[str, Any]]], Any] | None = None
        self.reverse = True
        self.lock = threading.Lock()

    def add_user(self, uid: str, upn: str, **props: Any) -> None:
        self.users[uid] = {
            "id": uid,
            "userPrincipalName": upn,
            "assignedLicenses": [],
            "usageLocation": props.pop("usageLocation", "US"),
            **props,
        }

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        body = json.loads(request.body) if request.body else None
        path = urlparse(url).path[len("/v1.0") :]
        query = urlparse(url).query
        if path == "/$batch":
            items = body["requests"]
            with self.lock:
                self.log.append((time.monotonic(), "POST", "$batch", [i["id"] for i in items]))
                self.batches.append(items)
            if not batch_shape_ok(items):
                error = {"error": {"code": "BadRequest", "message": MIXED_BATCH}}
                return _response(request, 400, {}, error)
            if self.outer is not None:
                forced = self.outer(items)
                if isinstance(forced, Exception):
                    raise forced
                if forced is not None:
                    return _response(request, forced[0], forced[1], forced[2])
            answers = []
            failed: set[str] = set()
            for item in items:
                deps = item.get("dependsOn") or []
                if any(d in failed for d in deps):
                    answers.append(
                        {
                            "id": item["id"],
                            "status": 424,
                            "headers": {},
                            "body": {"error": {"code": "FailedDependency", "message": "dep"}},
                        }
                    )
                    failed.add(item["id"])
                    continue
                status, headers, out = self.handle(item["method"], item["url"], item.get("body"))
                with self.lock:
                    self.item_log.append((time.monotonic(), item["url"], status))
                if status is None:  # dropped from the answer
                    failed.add(item["id"])
                    continue
                if status >= 400:
                    failed.add(item["id"])
                answers.append(
                    {"id": item["id"], "status": status, "headers": headers, "body": out}
                )
            if self.reverse:
                answers.reverse()
            return _response(request, 200, {}, {"responses": answers})
        with self.lock:
            self.log.append((time.monotonic(), request.method or "", url, None))
        status, headers, out = self.handle(
            request.method or "GET", path + ("?" + query if query else ""), body
        )
        return _response(request, status or 504, headers, out)

    def handle(self, method: str, url: str, body: Any) -> tuple[int | None, dict[str, str], Any]:
        item = {"method": method, "url": url, "body": body}
        if self.script is not None:
            forced = self.script(item)
            if forced is not None:
                if forced == "lost":  # apply, then answer 504
                    self._apply(method, url, body)
                    return 504, {}, {"error": {"code": "GatewayTimeout", "message": "lost"}}
                if forced == "drop-applied":
                    self._apply(method, url, body)
                    return None, {}, None
                status, headers, out = forced
                return status, headers, out
        return self._apply(method, url, body)

    def _apply(self, method: str, url: str, body: Any) -> tuple[int, dict[str, str], Any]:
        parts = urlparse(url)
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        if segments[0] == "users" and len(segments) == 1 and method == "GET":
            return 200, {}, {"value": list(self.users.values())}
        uid = segments[1] if len(segments) > 1 else ""
        user = self.users.get(uid)
        if user is None:
            return (
                404,
                {},
                {
                    "error": {
                        "code": "Request_ResourceNotFound",
                        "message": f"Resource '{uid}' does not exist",
                    }
                },
            )
        if method == "GET":
            return 200, {}, dict(user)
        if method == "PATCH":
            user.update(body)
            return 204, {}, None
        if segments[-1] == "assignLicense":
            with self.lock:
                self.applied[uid] = self.applied.get(uid, 0) + 1
            held = {lic["skuId"]: lic for lic in user["assignedLicenses"]}
            for lic in body["addLicenses"]:
                held[lic["skuId"]] = lic
            for sku in body["removeLicenses"]:
                held.pop(sku, None)
            user["assignedLicenses"] = list(held.values())
            return 200, {"x-ms-resource-unit": "1"}, dict(user)
        return 400, {}, {"error": {"code": "Request_BadRequest", "message": "bad"}}


def _response(
    request: requests.PreparedRequest, status: int, headers: dict[str, str], body: Any
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update({"request-id": "req-1", **headers})
    response._content = json.dumps(body).encode() if body is not None else b""
    response.request = request
    response.url = request.url or ""
    return response


def fake_client(fake: FakeGraph, tmp_path: Any, **kwargs: Any) -> GraphClient:
    """A client whose session talks to ``fake`` and whose token is a fixed string."""
    settings = Settings(home=tmp_path, tenant_id="t", client_id="c", graph_url=BASE)
    session = requests.Session()
    session.mount("https://graph.test", fake)
    return GraphClient(
        settings,
        session=session,
        token_provider=lambda: "token-1",
        retry=RetryPolicy(backoff_base=0.01, backoff_cap=0.05),
        **kwargs,
    )
