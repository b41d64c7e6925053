"""Simulated tenant, query options: ``$filter`` to SQL, ``$select``, ``$top`` and skip tokens.

The ``$filter`` grammar covers what a licensing tool sends, compiled to a parameterised SQL
condition on the users (or groups) table::

    expr    := term (("and" | "or") term)*
    term    := "(" expr ")" | "not" term | call | any | comparison
    call    := ("startswith" | "endswith") "(" property "," string ")"
    any     := "assignedLicenses/any(" var ":" var "/skuId eq" guid ")"
               | "assignedLicenses/$count" ("eq" | "ne") number
    compare := property ("eq"|"ne"|"ge"|"le"|"gt"|"lt") literal | property "in" "(" literals ")"

Strings use single quotes with ``''`` for a quote; string comparison ignores case, as in
Entra. ``ne``, ``not``, ``endswith`` and ``$count`` inside a filter are advanced queries
(they need ``ConsistencyLevel: eventual`` and ``$count=true``). Choice, where the docs are
silent: ``assignedLicenses/any(x:x/skuId eq GUID)`` works without them.

Limits (graph-reference.md section 11, known-issues.md), each a 400
``Request_UnsupportedQuery`` (the code of every other unsupported-filter answer here):

- an ``in`` list of more than 15 values: "Too many child clauses specified in search filter
  expression containing 'OR' operators: N. Max allowed: 15." Choice: a chain of more than
  15 terms joined by ``or`` at one level gets the same answer (the message names 'OR'), and
  each list or chain is counted on its own;
- a string compared with ``eq`` (or listed in ``in``) longer than 120 characters. Choice
  (the docs give the limit, not the answer): "The value of a string in a filter expression
  is limited to 120 characters.";
- ``signInActivity/...`` supports ``eq``, ``ne``, ``not``, ``ge``, ``le`` "but not with any
  other filterable properties" (user.md): ``gt``, ``lt`` and ``in`` on it, or a filter that
  also names another property, answer the usual "Unsupported or invalid query filter
  clause specified for property '...' of resource 'User'."
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from batch.simulator.responses import GraphFault, bad_request

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<punct>[(),:])"
    r"|(?P<datetime>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)"
    r"|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_$][A-Za-z0-9_$/]*))"
)
_OPERATORS = {"eq": "=", "ne": "!=", "ge": ">=", "le": "<=", "gt": ">", "lt": "<"}
MAX_OR_CLAUSES = 15
MAX_EQ_STRING = 120
_SIGN_IN_OPERATORS = frozenset({"eq", "ne", "ge", "le"})

#: lower-case property -> (column, kind) for users
USER_FILTERS: dict[str, tuple[str, str]] = {
    "id": ("id", "str"),
    "userprincipalname": ("upn", "str"),
    "displayname": ("display_name", "str"),
    "givenname": ("given_name", "str"),
    "surname": ("surname", "str"),
    "mail": ("mail", "str"),
    "accountenabled": ("account_enabled", "bool"),
    "usagelocation": ("usage_location", "str"),
    "department": ("department", "str"),
    "employeeid": ("employee_id", "str"),
    "jobtitle": ("job_title", "str"),
    "country": ("country", "str"),
    "usertype": ("user_type", "str"),
    "createddatetime": ("created", "datetime"),
    "signinactivity/lastsignindatetime": ("last_sign_in", "datetime"),
    "signinactivity/lastnoninteractivesignindatetime": ("last_non_interactive", "datetime"),
    "signinactivity/lastsuccessfulsignindatetime": ("last_successful", "datetime"),
}
GROUP_FILTERS: dict[str, tuple[str, str]] = {
    "id": ("id", "str"),
    "displayname": ("display_name", "str"),
    "mailnickname": ("mail_nickname", "str"),
    "securityenabled": ("security_enabled", "bool"),
    "mailenabled": ("mail_enabled", "bool"),
}


@dataclass
class Condition:
    """A compiled filter: SQL text, parameters, and what kind of query it is."""

    sql: str = "1"
    params: list[Any] = field(default_factory=list)
    advanced: bool = False
    sign_in: bool = False


def invalid_filter(detail: str = "") -> GraphFault:
    """Graph's answer to a filter it cannot parse."""
    return bad_request(f"Invalid filter clause{': ' + detail if detail else ''}")


def unsupported(prop: str, resource: str) -> GraphFault:
    """Graph's answer to a filter on a property it cannot filter."""
    return bad_request(
        f"Unsupported or invalid query filter clause specified for property '{prop}' of "
        f"resource '{resource}'.",
        code="Request_UnsupportedQuery",
    )


def too_many_clauses(count: int) -> GraphFault:
    """Graph's answer to an ``in`` list (or ``or`` chain) of more than 15 clauses."""
    return bad_request(
        "Too many child clauses specified in search filter expression containing 'OR' "
        f"operators: {count}. Max allowed: {MAX_OR_CLAUSES}.",
        code="Request_UnsupportedQuery",
    )


def string_too_long() -> GraphFault:
    """This simulator's answer to an ``eq`` string over 120 characters (a choice)."""
    return bad_request(
        f"The value of a string in a filter expression is limited to {MAX_EQ_STRING} characters.",
        code="Request_UnsupportedQuery",
    )


def compile_filter(text: str, properties: dict[str, tuple[str, str]], resource: str) -> Condition:
    """Compile ``$filter`` text to a SQL condition, or raise the 400 Graph would send."""
    tokens = _tokenize(text)
    parser = _Parser(tokens, properties, resource)
    sql = parser.expression()
    if parser.pos != len(tokens):
        raise invalid_filter(f"syntax error at position {parser.pos}")
    if parser.sign_in and parser.others:
        raise unsupported(parser.sign_in_property, resource)
    return Condition(sql, parser.params, parser.advanced, parser.sign_in)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise invalid_filter(f"unexpected character at position {pos}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    def __init__(
        self, tokens: list[tuple[str, str]], properties: dict[str, tuple[str, str]], resource: str
    ) -> None:
        self.tokens = tokens
        self.pos = 0
        self.properties = properties
        self.resource = resource
        self.params: list[Any] = []
        self.advanced = False
        self.sign_in = False
        self.sign_in_property = ""
        self.others = False  # a property other than signInActivity/... was named

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end" or (value is not None and token[1].lower() != value):
            raise invalid_filter(f"expected {value or 'a term'}")
        self.pos += 1
        return token

    def expression(self) -> str:
        parts = [self.term()]
        ors = 0
        while self.peek()[0] == "word" and self.peek()[1].lower() in ("and", "or"):
            joiner = self.take()[1].upper()
            ors += joiner == "OR"
            parts.append(joiner)
            parts.append(self.term())
        if ors + 1 > MAX_OR_CLAUSES:
            raise too_many_clauses(ors + 1)
        return "(" + " ".join(parts) + ")"

    def term(self) -> str:
        kind, value = self.peek()
        if kind == "punct" and value == "(":
            self.take("(")
            inner = self.expression()
            self.take(")")
            return inner
        if kind != "word":
            raise invalid_filter("expected a property")
        lower = value.lower()
        if lower == "not":
            self.take()
            self.advanced = True
            return f"NOT {self.term()}"
        if lower in ("startswith", "endswith"):
            self.take()
            self.take("(")
            column = self.column(self.take()[1])
            self.take(",")
            literal = self.literal("str")
            self.take(")")
            if lower == "endswith":
                self.advanced = True
                pattern = "%" + _escape_like(str(literal))
            else:
                pattern = _escape_like(str(literal)) + "%"
            self.params.append(pattern)
            return f"{column} LIKE ? ESCAPE '\\'"
        if lower.startswith("assignedlicenses/"):
            self.others = True
            return self.licenses(value)
        self.take()
        column, col_kind = self.lookup(value)
        op = self.take()[1].lower()
        if lower.startswith("signinactivity/") and op not in _SIGN_IN_OPERATORS:
            raise unsupported(value, self.resource)
        if op == "in":
            self.take("(")
            values = [self.literal(col_kind)]
            while self.peek()[1] == ",":
                self.take(",")
                values.append(self.literal(col_kind))
            self.take(")")
            if len(values) > MAX_OR_CLAUSES:
                raise too_many_clauses(len(values))
            if any(isinstance(v, str) and len(v) > MAX_EQ_STRING for v in values):
                raise string_too_long()
            self.params.extend(values)
            collate = " COLLATE NOCASE" if col_kind == "str" else ""
            return f"{column}{collate} IN ({','.join('?' * len(values))})"
        if op not in _OPERATORS:
            raise invalid_filter(f"unknown operator '{op}'")
        if op == "ne":
            self.advanced = True
        literal = self.literal(col_kind)
        if literal is None:
            if op not in ("eq", "ne"):
                raise invalid_filter("null can only be compared with eq or ne")
            return f"{column} IS {'NOT ' if op == 'ne' else ''}NULL"
        if op == "eq" and isinstance(literal, str) and len(literal) > MAX_EQ_STRING:
            raise string_too_long()
        self.params.append(literal)
        collate = " COLLATE NOCASE" if col_kind == "str" else ""
        return f"{column}{collate} {_OPERATORS[op]} ?"

    def licenses(self, word: str) -> str:
        self.take()
        if self.resource != "User":
            raise unsupported(word, self.resource)
        active = "state IN ('Active', 'ActiveWithError')"
        if word.lower() == "assignedlicenses/any":
            self.take("(")
            var = self.take()[1]
            self.take(":")
            if self.take()[1].lower() != f"{var.lower()}/skuid":
                raise unsupported(word, self.resource)
            self.take("eq")
            kind, sku = self.take()
            if kind != "guid":
                raise invalid_filter("skuId must be compared with a GUID")
            self.take(")")
            self.params.append(sku.lower())
            return f"id IN (SELECT user_id FROM licenses WHERE sku_id = ? AND {active})"
        if word.lower() == "assignedlicenses/$count":
            self.advanced = True
            op = self.take()[1].lower()
            kind, number = self.take()
            if op not in ("eq", "ne") or kind != "number" or number != "0":
                raise unsupported(word, self.resource)
            exists = f"EXISTS (SELECT 1 FROM licenses l WHERE l.user_id = users.id AND {active})"
            return exists if op == "ne" else f"NOT {exists}"
        raise unsupported(word, self.resource)

    def lookup(self, name: str) -> tuple[str, str]:
        entry = self.properties.get(name.lower())
        if entry is None:
            raise unsupported(name, self.resource)
        if name.lower().startswith("signinactivity/"):
            self.sign_in = True
            self.sign_in_property = name
        else:
            self.others = True
        return entry

    def column(self, name: str) -> str:
        column, kind = self.lookup(name)
        if kind != "str":
            raise unsupported(name, self.resource)
        return column

    def literal(self, kind: str) -> Any:
        token_kind, value = self.take()
        if token_kind == "word" and value.lower() == "null":
            return None
        if kind == "bool":
            if token_kind != "word" or value.lower() not in ("true", "false"):
                raise invalid_filter("expected true or false")
            return 1 if value.lower() == "true" else 0
        if kind == "datetime":
            if token_kind != "datetime":
                raise invalid_filter("expected a DateTimeOffset")
            return value.replace("+00:00", "Z")
        if token_kind == "string":
            return value[1:-1].replace("''", "'")
        if token_kind == "guid" and kind == "str":
            # Graph expects quoted strings; an unquoted GUID is not a string literal.
            raise invalid_filter("a string literal must be quoted")
        raise invalid_filter("expected a literal")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def parse_select(text: str | None, properties: tuple[str, ...], resource: str) -> list[str] | None:
    """Canonical property names of ``$select`` (None when absent)."""
    if text is None:
        return None
    canonical = {p.lower(): p for p in properties}
    result: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        if name.lower() not in canonical:
            raise bad_request(
                f"Could not find a property named '{name}' on type 'microsoft.graph."
                f"{resource[0].lower()}{resource[1:]}'."
            )
        if canonical[name.lower()] not in result:
            result.append(canonical[name.lower()])
    if not result:
        raise bad_request("Invalid $select clause.")
    return result


def parse_top(text: str | None, default: int, maximum: int) -> int:
    """The page size from ``$top``; 400 outside 1..maximum."""
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise bad_request(
            f"Invalid page size specified: '{text}'. Must be between 1 and {maximum} inclusive."
        )
    return int(text)


def make_skiptoken(last_seq: int) -> str:
    """An opaque continuation token pointing after ``last_seq``."""
    raw = f"m365sim:{last_seq}:{uuid.uuid5(uuid.NAMESPACE_OID, str(last_seq)).hex[:8]}"
    return "RFNwdAIA" + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def read_skiptoken(token: str | None) -> int:
    """The sequence a skip token points after; 400 for a token we did not issue."""
    if token is None:
        return 0
    try:
        body = token.removeprefix("RFNwdAIA")
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        prefix, seq, check = raw.split(":")
        if prefix != "m365sim" or uuid.uuid5(uuid.NAMESPACE_OID, seq).hex[:8] != check:
            raise ValueError(raw)
        return int(seq)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("Invalid skip token.") from exc
