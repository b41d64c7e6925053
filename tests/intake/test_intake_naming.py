"""Naming many cells at once: part_namer names exactly as name_parts does, text by text."""

from __future__ import annotations

import pytest

from batch.intake.catalog import name_parts, part_namer

NAMES = {
    "SPE_E3": "Microsoft 365 E3",
    "SPE_E3_USGOV_DOD": "Microsoft 365 E3 (DOD)",
    "FLOW_FREE": "Microsoft Power Automate Free",
    "CUSTOM": "CUSTOM",  # a name that is its part number: left alone
    "NONAME": "",
}
TEXTS = [
    "",
    "SPE_E3",
    "SPE_E3, FLOW_FREE",
    "SPE_E3_USGOV_DOD",
    "Microsoft 365 E3 (SPE_E3)",  # already named: left alone
    "no free seat of SPE_E3; FLOW_FREE not held",
    "XSPE_E3 SPE_E3X CUSTOM NONAME",
    "spe_e3 (lower case is not a part number)",
]


@pytest.mark.parametrize("text", TEXTS)
def test_part_namer_names_as_name_parts_does(text: str) -> None:
    named = part_namer(NAMES)
    assert named(text) == name_parts(text, NAMES)
    assert named(text) == name_parts(text, NAMES)  # asked again: the same answer


def test_part_namer_names_products_with_their_part_number() -> None:
    named = part_namer(NAMES)
    assert named("SPE_E3, FLOW_FREE") == (
        "Microsoft 365 E3 (SPE_E3), Microsoft Power Automate Free (FLOW_FREE)"
    )
    assert named("SPE_E3_USGOV_DOD") == "Microsoft 365 E3 (DOD) (SPE_E3_USGOV_DOD)"


def test_part_namer_without_names_leaves_text_alone() -> None:
    assert part_namer({})("SPE_E3") == "SPE_E3"
    assert part_namer({"X": "X"})("X and Y") == "X and Y"
