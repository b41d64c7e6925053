"""A CSV mixing UTF-8 and Windows-1252 rows is refused, never read as garbled names."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.errors import InputError
from batch.intake.sources import read_sheet


def test_mixed_utf8_and_cp1252_rows_are_refused_naming_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        b"UserPrincipalName,DisplayName\n"
        + "renee@contoso.example,Renée\n".encode()
        + "jose@contoso.example,José\n".encode("cp1252")
    )
    with pytest.raises(InputError, match=r"mixes UTF-8 text \(line 2\).*\(line 3\)") as refused:
        read_sheet(path)
    assert "CSV UTF-8" in str(refused.value.hint)


def test_plain_cp1252_and_plain_utf8_are_still_read(tmp_path: Path) -> None:
    for encoding, label in (("cp1252", "Windows-1252"), ("utf-8", "UTF-8")):
        path = tmp_path / f"{encoding}.csv"
        path.write_bytes(
            "UserPrincipalName,DisplayName\nrenee@contoso.example,Renée\n".encode(encoding)
        )
        sheet = read_sheet(path)
        assert sheet.encoding == label
        assert sheet.rows[0].values[1] == "Renée"
