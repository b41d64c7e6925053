"""Simulated tenant, JSON batching: ``POST /$batch`` as json-batching.md describes it.

Whole-batch 400s (the batch is malformed): not JSON, no ``requests`` array, more than 20
items, an item without ``id``/``method``/``url``, duplicate ids (ids compare without
case), ``dependsOn`` naming an unknown or later item or more than one item, and a batch
whose dependencies follow none of the three patterns of known-issues.md (see
:func:`dependency_pattern`), answered ``BadRequest`` "Batch should be either fully
sequential or fully parallel" (graph-reference.md section 11). Item-level 400s
(the batch is answered 200): an absolute URL, a nested ``$batch``, a body without a
``Content-Type`` header. Items run in order; an item whose dependency failed gets 424.
Each item is checked against throttling on its own, so one batch can mix 200s and 429s,
each 429 with its own ``Retry-After`` in the item's headers. Responses come back in a
shuffled (seeded) order. Message texts for the malformed cases are this simulator's own.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from batch.simulator.calls import Call, Caller, split_url
from batch.simulator.responses import GraphFault, Reply, error_body
from batch.simulator.service import Service, new_request_id

MAX_ITEMS = 20
_BAD_PAYLOAD = (
    "Unable to read JSON request payload. Please ensure Content-Type header is set "
    "and payload is of valid JSON format."
)


MIXED_DEPENDENCIES = "Batch should be either fully sequential or fully parallel"


def dependency_pattern(items: list[dict[str, Any]]) -> str | None:
    """``"parallel"``, ``"serial"`` or ``"same"``, or None for a batch Graph refuses.

    known-issues.md: requests "can only depend on a single other request, and must follow
    one of these three patterns": Parallel (no item states a dependency; an empty
    ``dependsOn`` list states none), Serial ("all individual requests depend on the
    previous individual request": every item after the first depends on the one just before
    it, so no item after the first may go without one), Same ("all individual requests that
    state a dependency ... state the same dependency"; items without one may stand anywhere).
    Items are taken in the order of the ``requests`` array. ``[1, 2 dependsOn 1]`` is both
    Serial and Same; ``[1, 2 dependsOn 1, 3]`` is Same; ``[1, 2 dependsOn 1, 3 dependsOn 2,
    4]`` and ``[1, 2 dependsOn 1, 3, 4 dependsOn 3]`` are neither.
    """
    targets = [(item.get("dependsOn") or [None])[0] for item in items]
    if all(t is None for t in targets):
        return "parallel"
    ids = [str(item["id"]).lower() for item in items]
    if targets[0] is None and all(
        t is not None and t.lower() == ids[i] for i, t in enumerate(targets[1:])
    ):
        return "serial"
    if len({t.lower() for t in targets if t is not None}) == 1:
        return "same"
    return None


def _batch_error(message: str) -> GraphFault:
    return GraphFault(400, "BadRequest", message)


def _validate(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise _batch_error(_BAD_PAYLOAD)
    items = payload["requests"]
    if not items:
        raise _batch_error("Invalid batch payload: the requests array is empty.")
    if len(items) > MAX_ITEMS:
        raise _batch_error(
            f"Limit of {MAX_ITEMS} requests exceeded: the batch has "
            f"{len(items)}. Reduce the number of requests and try again."
        )
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _batch_error(_BAD_PAYLOAD)
        for key in ("id", "method", "url"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise _batch_error(
                    f"Invalid batch payload format: request {index} has no valid '{key}'."
                )
        key = item["id"].lower()
        if key in seen:
            raise _batch_error(
                f"Batch request contains duplicate id '{item['id']}'. Ids must "
                "be unique within a batch."
            )
        seen[key] = index
        if "headers" in item and not isinstance(item["headers"], dict):
            raise _batch_error(f"Invalid headers for request id {item['id']}.")
    for index, item in enumerate(items):
        depends = item.get("dependsOn")
        if depends is None:
            continue
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise _batch_error(f"Invalid dependsOn for request id {item['id']}.")
        if len(depends) > 1:
            raise _batch_error(
                f"Request id {item['id']} depends on more than one request; "
                "only a single dependency is supported."
            )
        for dep in depends:
            if dep.lower() not in seen or seen[dep.lower()] >= index:
                raise _batch_error(
                    f"Request id {item['id']} depends on '{dep}', which is "
                    "not an earlier request in this batch."
                )
    if dependency_pattern(items) is None:
        raise _batch_error(MIXED_DEPENDENCIES)
    return items


def _item_body(item: dict[str, Any], headers: dict[str, str]) -> Any:
    body = item.get("body")
    if body is None:
        return None
    if "content-type" not in headers:
        raise GraphFault(
            400,
            "BadRequest",
            f"Write request id : {item['id']} does not contain Content-Type header or body.",
        )
    if isinstance(body, str) and "json" in headers["content-type"].lower():
        try:
            return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, UnicodeDecodeError) as exc:
            raise GraphFault(400, "BadRequest", "Invalid base64-encoded body.") from exc
    return body


def handle_batch(
    service: Service,
    raw_body: bytes,
    caller: Caller,
    base_url: str,
    request_id: str,
    client_request_id: str,
) -> Reply:
    """Answer a ``$batch`` POST (outer 200 unless the batch itself is malformed)."""
    try:
        payload = json.loads(raw_body.decode("utf-8")) if raw_body else None
    except (ValueError, UnicodeDecodeError):
        payload = None
    try:
        items = _validate(payload)
    except GraphFault as fault:
        service.counters.add(f"batch_refused_{fault.status}")
        return Reply(
            fault.status, error_body(fault.code, fault.message, request_id, client_request_id)
        )
    service.counters.add("batches")
    responses: list[dict[str, Any]] = []
    status_by_id: dict[str, int] = {}
    for item in items:
        item_request_id = new_request_id()
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        depends = item.get("dependsOn") or []
        if any(status_by_id.get(d.lower(), 200) >= 400 for d in depends):
            reply = Reply(
                424,
                error_body(
                    "FailedDependency",
                    "The request depends on a request that failed.",
                    item_request_id,
                    client_request_id,
                ),
            )
        else:
            reply = _run_item(
                service, item, headers, caller, base_url, item_request_id, client_request_id
            )
        status_by_id[item["id"].lower()] = reply.status
        entry: dict[str, Any] = {
            "id": item["id"],
            "status": reply.status,
            "headers": {"request-id": item_request_id, **reply.headers},
        }
        if reply.body is not None:
            entry["headers"].setdefault(
                "Content-Type",
                "application/json;odata.metadata=minimal;odata.streaming=true"
                if not isinstance(reply.body, str)
                else "text/plain",
            )
            entry["body"] = reply.body
        responses.append(entry)
    service.faults.shuffle(responses)  # type: ignore[arg-type]
    return Reply(200, {"responses": responses})


def _run_item(
    service: Service,
    item: dict[str, Any],
    headers: dict[str, str],
    caller: Caller,
    base_url: str,
    request_id: str,
    client_request_id: str,
) -> Reply:
    url = item["url"]
    method = item["method"].upper()
    try:
        if "://" in url or url.startswith("//"):
            raise GraphFault(
                400,
                "BadRequest",
                "Invalid request URL: batch requests must use relative URLs such as /users.",
            )
        relative = url if url.startswith("/") else "/" + url
        segments, params = split_url(relative)
        if segments and segments[0].lower() in ("v1.0", "beta"):
            raise GraphFault(
                400,
                "BadRequest",
                "Invalid request URL: relative URLs in a batch "
                "must not include the version segment.",
            )
        if segments and segments[0] == "$batch":
            raise GraphFault(400, "BadRequest", "Nested batch requests are not supported.")
        body = _item_body(item, headers)
    except GraphFault as fault:
        return Reply(
            fault.status, error_body(fault.code, fault.message, request_id, client_request_id)
        )
    call = Call(
        method=method,
        segments=segments,
        params=params,
        headers=headers,
        body=body,
        base_url=base_url,
        path=relative.partition("?")[0],
    )
    return service.operation(call, caller, request_id, client_request_id)
