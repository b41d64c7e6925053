"""Simulated tenant, sample data: a deterministic mid-size organisation to start from.

:func:`generate_tenant` builds the tenant that ``samples/tenant.json`` holds (run
``scripts/make_sample_tenant.py`` to rewrite that file) and, with ``users=N``, a tenant of
any size for load tests (``simulator reset --users 100000``). The same seed and size give
the same tenant, byte for byte.

What the sample exercises: unicode names, users without a usage location, disabled users
holding licenses, users who never signed in, a guest ``#EXT#`` UPN, an apostrophe UPN, a
plus-address, a ``$``-leading UPN, SKUs with 1-3 free seats, a Company-only SKU, SKUs with
warning and suspended units, licensed groups (one in CountViolation), and Business
Premium / E3 holders whose Exchange plans are mutually exclusive. Sign-in times are stored
as "days ago" and become timestamps when the tenant is loaded, so the sample never ages.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from typing import Any

from batch.simulator.catalog import SKUS

FORMAT = 1
DOMAIN = "contoso.example"
TENANT_NAME = "Contoso (simulated)"
DEFAULT_USERS = 300

FIRST_NAMES = (
    "Adele",
    "Alex",
    "Allan",
    "Ben",
    "Carmen",
    "Chloé",
    "Daniel",
    "Diego",
    "Emma",
    "Eszter",
    "Fatima",
    "François",
    "Grace",
    "Hannah",
    "Henrik",
    "Ingrid",
    "Isabel",
    "Jan",
    "José",
    "Julia",
    "Kenji",
    "Lars",
    "Léa",
    "Lukas",
    "Łukasz",
    "Maria",
    "Mateo",
    "Mei",
    "Miriam",
    "Nadia",
    "Noah",
    "Olga",
    "Oscar",
    "Pierre",
    "Priya",
    "Rafael",
    "Renée",
    "Sakura",
    "Sofia",
    "Søren",
    "Thomas",
    "Uma",
    "Victor",
    "Wei",
    "Yusuf",
    "Zoë",
    "Ángel",
    "Björn",
    "Dörte",
    "Siobhán",
)
LAST_NAMES = (
    "Andersson",
    "Bauer",
    "Brown",
    "Carvalho",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fernández",
    "García",
    "Hansen",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Lefèvre",
    "Müller",
    "Nakamura",
    "Novák",
    "Núñez",
    "O'Brien",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Smith",
    "Sørensen",
    "Tanaka",
    "Urbańska",
    "Van Dijk",
    "Wagner",
    "Williams",
    "Xu",
    "Yilmaz",
    "Zieliński",
    "Ångström",
    "Żółć",
    "D'Angelo",
    "Björk",
    "Ó Súilleabháin",
)
DEPARTMENTS = (
    ("Sales", ("Account Executive", "Sales Manager", "Sales Representative")),
    ("Marketing", ("Marketing Specialist", "Content Writer", "Marketing Manager")),
    ("Engineering", ("Software Engineer", "Senior Engineer", "Engineering Manager")),
    ("Finance", ("Accountant", "Financial Analyst", "Controller")),
    ("Human Resources", ("HR Generalist", "Recruiter", "HR Manager")),
    ("Operations", ("Operations Analyst", "Logistics Coordinator", "Warehouse Associate")),
    ("Customer Support", ("Support Agent", "Support Lead", "Field Technician")),
    ("Legal", ("Counsel", "Paralegal")),
    ("IT", ("IT Administrator", "Service Desk Analyst", "Security Engineer")),
)
COUNTRIES = (
    ("US", "United States", 40),
    ("GB", "United Kingdom", 12),
    ("DE", "Germany", 12),
    ("FR", "France", 8),
    ("ES", "Spain", 6),
    ("PL", "Poland", 6),
    ("SE", "Sweden", 4),
    ("NL", "Netherlands", 4),
    ("JP", "Japan", 4),
    ("CA", "Canada", 4),
)

# (part number, free seats (None = generous), appliesTo, capabilityStatus, warning, suspended)
SKU_PLAN = (
    ("SPE_E3", 2, "User", "Enabled", 0, 0),
    ("ENTERPRISEPACK", 9, "User", "Enabled", 0, 0),
    ("SPE_E5", 1, "User", "Enabled", 0, 0),
    ("SPB", 3, "User", "Enabled", 0, 0),
    ("O365_BUSINESS_PREMIUM", 6, "User", "Enabled", 0, 0),
    ("O365_BUSINESS_ESSENTIALS", 12, "User", "Enabled", 0, 0),
    ("EXCHANGESTANDARD", 4, "User", "Enabled", 0, 0),
    ("EMS", None, "User", "Enabled", 0, 0),
    ("POWER_BI_PRO", 0, "User", "Enabled", 0, 0),
    ("FLOW_FREE", None, "User", "Enabled", 0, 0),
    ("PROJECTPREMIUM", 2, "User", "Enabled", 5, 0),
    ("VISIOCLIENT", 0, "User", "Suspended", 0, 5),
    ("Microsoft_Teams_Rooms_Pro", 1, "User", "Enabled", 0, 0),
    ("MCOPSTNC", 1, "Company", "Enabled", 0, 0),
)
# Base license by share of ordinary users (the rest are unlicensed).
BASE_MIX = (
    ("SPE_E3", 0.30),
    ("ENTERPRISEPACK", 0.12),
    ("SPE_E5", 0.08),
    ("SPB", 0.15),
    ("O365_BUSINESS_PREMIUM", 0.07),
    ("O365_BUSINESS_ESSENTIALS", 0.10),
    ("EXCHANGESTANDARD", 0.05),
)
_FOLD = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE", "đ": "d", "Đ": "D"}
)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in folded if not unicodedata.combining(c)).lower()


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _days_ago(rng: random.Random, created_days: int) -> dict[str, float] | None:
    roll = rng.random()
    if roll < 0.05:
        return None  # never signed in
    if roll < 0.15:
        last = rng.uniform(95, min(400, max(96, created_days)))  # inactive
    else:
        last = rng.uniform(0.01, 30)
    return {
        "lastSignInDaysAgo": round(last, 3),
        "lastNonInteractiveDaysAgo": round(max(0.0, last - rng.uniform(0, 2)), 3),
        "lastSuccessfulDaysAgo": round(last, 3),
    }


def generate_tenant(users: int = DEFAULT_USERS, seed: int = 0) -> dict[str, Any]:
    """A tenant in the ``samples/tenant.json`` format; deterministic in (users, seed)."""
    rng = random.Random(f"m365batch-sample-{seed}-{users}")
    tenant_id = _uid(rng)
    directory = _Directory(rng)
    specials = _add_special_users(directory)
    _add_staff(directory, max(0, users - specials))
    people = directory.people
    groups = _groups(rng, people)
    return {
        "format": FORMAT,
        "organization": {
            "id": tenant_id,
            "displayName": TENANT_NAME,
            "domain": DOMAIN,
            "countryLetterCode": "US",
            "createdDateTime": "2019-03-14T10:00:00Z",
        },
        "skus": _skus(people, groups),
        "users": people,
        "groups": groups,
    }


class _Directory:
    """The users of a tenant being generated, with unique userPrincipalNames."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.people: list[dict[str, Any]] = []
        self._used: set[str] = set()

    def add(
        self,
        given: str,
        surname: str,
        *,
        upn_local: str | None = None,
        upn: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add a user with a random department, country and sign-in; ``extra`` overrides."""
        local = upn_local or f"{_ascii(given)}.{_ascii(surname)}".replace(" ", "")
        base, n = local, 2
        while f"{local}@{DOMAIN}".lower() in self._used:
            local, n = f"{base}{n}", n + 1
        address = upn or f"{local}@{DOMAIN}"
        self._used.add(address.lower())
        dept, titles = DEPARTMENTS[self.rng.randrange(len(DEPARTMENTS))]
        code, country, _ = self.rng.choices(COUNTRIES, weights=[c[2] for c in COUNTRIES])[0]
        created_days = self.rng.randrange(30, 1800)
        person: dict[str, Any] = {
            "id": _uid(self.rng),
            "userPrincipalName": address,
            "displayName": f"{given} {surname}",
            "givenName": given,
            "surname": surname,
            "mail": None if "#EXT#" in address else address,
            "accountEnabled": True,
            "usageLocation": code,
            "country": country,
            "department": dept,
            "jobTitle": self.rng.choice(titles),
            "employeeId": f"E{len(self.people) + 10001:06d}",
            "userType": "Member",
            "createdDateTime": f"{2021 + created_days % 5}-{1 + created_days % 12:02d}-"
            f"{1 + created_days % 28:02d}T09:{created_days % 60:02d}:00Z",
            "signIn": _days_ago(self.rng, created_days),
            "licenses": [],
        }
        person.update(extra)
        self.people.append(person)
        return person


def _license(part: str, disabled: list[str] | None = None) -> dict[str, Any]:
    return {"skuId": SKUS[part][0], "disabledPlans": disabled or []}


def _add_special_users(directory: _Directory) -> int:
    """The users every sample has, whatever its size: the awkward cases. Returns their count."""
    specials = [
        directory.add("Zoë", "Ångström", licenses=[_license("SPE_E3")]),
        directory.add("José", "Núñez", licenses=[_license("SPE_E3")]),
        directory.add("Łukasz", "Żółć", licenses=[_license("SPB")]),
        directory.add(
            "Siobhán", "O'Brien", upn_local="o'brien", licenses=[_license("ENTERPRISEPACK")]
        ),
        directory.add(
            "Jordan",
            "Plus",
            upn_local="jordan+sales",
            licenses=[_license("O365_BUSINESS_ESSENTIALS")],
        ),
        directory.add(
            "Backup",
            "Service",
            upn_local="$svc-backup",
            userType="Member",
            jobTitle="Service account",
            licenses=[],
        ),
        directory.add(
            "Adele",
            "Vance (Fabrikam)",
            upn=f"adele.vance_fabrikam.example#EXT#@{DOMAIN}",
            userType="Guest",
            usageLocation=None,
            licenses=[],
        ),
        directory.add(
            "Boardroom",
            "Room",
            upn_local="room-boardroom",
            jobTitle="Meeting room",
            licenses=[_license("Microsoft_Teams_Rooms_Pro")],
            signIn=None,
        ),
        directory.add(
            "Huddle",
            "Room",
            upn_local="room-huddle",
            jobTitle="Meeting room",
            licenses=[_license("Microsoft_Teams_Rooms_Pro")],
        ),
        directory.add(
            "Nadia", "NoLocation", upn_local="nadia.nolocation", usageLocation=None, licenses=[]
        ),
        directory.add(
            "Victor",
            "Leaver",
            upn_local="victor.leaver",
            accountEnabled=False,
            licenses=[_license("SPE_E3"), _license("POWER_BI_PRO")],
        ),
    ]
    return len(specials)


def _add_staff(directory: _Directory, count: int) -> None:
    """Ordinary staff, licensed by ``BASE_MIX`` with a few extras, leavers and gaps."""
    for _ in range(count):
        given, surname = directory.rng.choice(FIRST_NAMES), directory.rng.choice(LAST_NAMES)
        person = directory.add(given, surname)
        roll = directory.rng.random()
        acc = 0.0
        for part, share in BASE_MIX:
            acc += share
            if roll < acc:
                disabled = []
                if part == "SPE_E3" and directory.rng.random() < 0.1:
                    disabled = [p for n, p in SKUS[part][2] if n in ("YAMMER_ENTERPRISE", "SWAY")]
                person["licenses"].append(_license(part, disabled))
                break
        if person["licenses"] and directory.rng.random() < 0.15:
            person["licenses"].append(_license("FLOW_FREE"))
        if (
            person["licenses"]
            and person["department"] == "Operations"
            and directory.rng.random() < 0.2
        ):
            person["licenses"].append(_license("PROJECTPREMIUM"))
        extra = directory.rng.random()
        if extra < 0.02:
            person["usageLocation"] = None
            person["licenses"] = []
        elif extra < 0.06:
            person["accountEnabled"] = False  # leavers who still hold licenses


def _groups(rng: random.Random, people: list[dict[str, Any]]) -> list[dict[str, Any]]:
    staff = [p for p in people if p["userType"] == "Member" and "Room" not in p["surname"]]
    e3_group = [p["id"] for p in staff if not p["licenses"] and p["usageLocation"]][::3]
    # A few hold E3 both directly and through the group: they use one seat.
    e3_group += [
        p["id"] for p in staff if any(lic["skuId"] == SKUS["SPE_E3"][0] for lic in p["licenses"])
    ][:4]
    # Users without a usage location inherit the tenant's through the group.
    e3_group += [p["id"] for p in staff if not p["usageLocation"]][:2]
    ems = [p["id"] for p in staff if p["department"] in ("IT", "Engineering")]
    bi = [p["id"] for p in staff if p["department"] in ("Finance", "Sales")][
        : max(5, len(staff) // 9)
    ]
    everyone = [p["id"] for p in people if p["userType"] == "Member"]

    def group(
        name: str, nickname: str, members: list[str], licenses: list[str], description: str
    ) -> dict[str, Any]:
        return {
            "id": _uid(rng),
            "displayName": name,
            "description": description,
            "mailNickname": nickname,
            "securityEnabled": True,
            "mailEnabled": False,
            "groupTypes": [],
            "createdDateTime": "2022-06-01T08:00:00Z",
            "assignedLicenses": [{"skuId": SKUS[s][0], "disabledPlans": []} for s in licenses],
            "members": list(dict.fromkeys(members)),
        }

    return [
        group(
            "Licensing - Microsoft 365 E3",
            "lic-m365-e3",
            e3_group,
            ["SPE_E3"],
            "Group-based licensing: Microsoft 365 E3",
        ),
        group(
            "Licensing - EMS E3",
            "lic-ems-e3",
            ems,
            ["EMS"],
            "Group-based licensing: Enterprise Mobility + Security E3",
        ),
        group(
            "Licensing - Power BI Pro",
            "lic-powerbi-pro",
            bi,
            ["POWER_BI_PRO"],
            "Group-based licensing: Power BI Pro (over-subscribed)",
        ),
        group("All Staff", "all-staff", everyone, [], "Every member account"),
        group(
            "Sales Team",
            "sales-team",
            [p["id"] for p in staff if p["department"] == "Sales"],
            [],
            "Sales department",
        ),
    ]


def _skus(people: list[dict[str, Any]], groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    holders: dict[str, set[str]] = {}
    for person in people:
        for lic in person["licenses"]:
            holders.setdefault(lic["skuId"], set()).add(person["id"])
    for group in groups:
        for lic in group["assignedLicenses"]:
            holders.setdefault(lic["skuId"], set()).update(group["members"])
    result = []
    for part, free, applies_to, status, warning, suspended in SKU_PLAN:
        sku_id, name, plans = SKUS[part]
        used = len(holders.get(sku_id, ()))
        if part == "POWER_BI_PRO":
            # Two fewer seats than holders: the licensed group ends in CountViolation.
            enabled = max(0, used - 2)
        elif status == "Suspended":
            enabled = 0
        elif free is None:
            enabled = max(100, used * 2)
        else:
            enabled = used + free
        result.append(
            {
                "skuId": sku_id,
                "skuPartNumber": part,
                "displayName": name,
                "appliesTo": applies_to,
                "capabilityStatus": status,
                "prepaidUnits": {
                    "enabled": enabled,
                    "warning": warning,
                    "suspended": suspended,
                    "lockedOut": 0,
                },
                "servicePlans": [
                    {
                        "servicePlanId": pid,
                        "servicePlanName": pname,
                        "provisioningStatus": "Success",
                        "appliesTo": applies_to,
                    }
                    for pname, pid in plans
                ],
            }
        )
    return result
