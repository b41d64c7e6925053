"""Validate, single cells: user principal names, usage locations, dates and cell lists.

Pure functions used by :mod:`batch.intake.validate`; each returns a value or a reason, never
raises for bad input. Results are cached per distinct text, since HR sheets repeat values.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from functools import lru_cache

import pycountry

__all__ = ["parse_date", "parse_usage_location", "split_list", "upn_problem"]


_UPN_LOCAL = re.compile(r"^[A-Za-z0-9'.\-_!#^~+$&]+$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?$")


_UPN_FAST = re.compile(
    r"^[A-Za-z0-9'\-_!#^~+$&]+(?:\.[A-Za-z0-9'\-_!#^~+$&]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]+$"
)


def upn_problem(upn: str) -> str | None:
    """Why ``upn`` is not a user principal name Entra accepts, or None if it is one.

    Follows Entra's UPN rules: ``local@domain``; the local part (at most 64 characters) of
    letters, digits and ``' . - _ ! # ^ ~ + $ &``, not starting or ending with a dot;
    guests' ``#EXT#`` form is valid; at most 113 characters in all.
    """
    if len(upn) <= 113 and _UPN_FAST.match(upn) and upn.index("@") <= 64:
        return None  # the common case, in one regex
    if any(ch.isspace() for ch in upn):
        return "it contains a space"
    if upn.count("@") != 1:
        return "it needs exactly one @" if upn.count("@") > 1 else "it has no @domain"
    local, domain = upn.split("@")
    if not local:
        return "nothing before the @"
    if len(upn) > 113:
        return "longer than 113 characters"
    if len(local) > 64:
        return "more than 64 characters before the @"
    if not _UPN_LOCAL.match(local):
        bad = sorted({ch for ch in local if not _UPN_LOCAL.match(ch)})
        return f"character {' '.join(repr(ch) for ch in bad)} is not allowed before the @"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "a dot cannot start or end the name or follow another dot"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        return f"'{domain}' is not a domain name"
    if not labels[-1].isalpha():
        return f"'{domain}' does not end in a top-level domain"
    return None


_COUNTRY_ALIASES = {
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "usa": "US",
    "u.s.a.": "US",
    "u.s.": "US",
    "america": "US",
    "united states of america": "US",
    "holland": "NL",
    "the netherlands": "NL",
    "south korea": "KR",
    "russia": "RU",
    "czechia": "CZ",
    "czech republic": "CZ",
    "vietnam": "VN",
    "turkey": "TR",
    "iran": "IR",
    "taiwan": "TW",
    "uae": "AE",
}


@lru_cache(maxsize=4096)
def parse_usage_location(text: str) -> tuple[str | None, bool]:
    """(ISO alpha-2 code or None, True when it was given as a name or alias)."""
    value = " ".join(text.split())
    if len(value) == 2 and value.isalpha():
        country = pycountry.countries.get(alpha_2=value.upper())
        if country:
            return str(country.alpha_2), False
    alias = _COUNTRY_ALIASES.get(value.casefold())
    if alias:
        return alias, True
    if len(value) < 3:
        return None, False
    try:
        country = pycountry.countries.lookup(value)
    except LookupError:
        return None, False
    return str(country.alpha_2), True


_ISO_DATE = re.compile(
    r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_SLASHED = re.compile(r"^(\d{1,2})[/-](\d{1,2})[/-](\d{4})$")
_NAMED_FORMATS = (
    "%d %B %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%B %d %Y",
    "%b %d %Y",
    "%d-%b-%Y",
    "%d-%b-%y",
    "%d %b %y",
)


@lru_cache(maxsize=4096)
def parse_date(text: str) -> tuple[dt.date | None, str | None]:
    """(date, None) or (None, why not). Refuses ambiguous day/month orders."""
    value = text.strip()
    try:
        match = _ISO_DATE.match(value)
        if match:
            return dt.date(int(match[1]), int(match[2]), int(match[3])), None
        match = _DOTTED.match(value)
        if match:
            return dt.date(int(match[3]), int(match[2]), int(match[1])), None
        match = _SLASHED.match(value)
        if match:
            first, second, year = int(match[1]), int(match[2]), int(match[3])
            if first > 12:
                return dt.date(year, second, first), None
            if second > 12 or first == second:
                return dt.date(year, first, second), None
            return None, (
                f"'{value}' could be {first}/{second} or {second}/{first} (day/month): "
                "write it as YYYY-MM-DD"
            )
    except ValueError:
        return None, f"'{value}' is not a real date"
    for fmt in _NAMED_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).date(), None
        except ValueError:
            continue
    return None, f"'{value}' is not a date: write it as YYYY-MM-DD"


_SPLIT_MAIN = re.compile(r"[;\n\r]+")


def split_list(text: str, whole: Callable[[str], bool] | None = None) -> list[str]:
    """Split a cell list on ; , or line breaks, keeping a whole entry that ``whole`` accepts."""
    items: list[str] = []
    for part in _SPLIT_MAIN.split(text):
        part = part.strip()
        if not part:
            continue
        if "," in part and not (whole and whole(part)):
            items.extend(p.strip() for p in part.split(",") if p.strip())
        else:
            items.append(part)
    return list(dict.fromkeys(items))
