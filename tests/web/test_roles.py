"""Roles from the ID token: app roles, or groups named in m365batch.toml."""

from __future__ import annotations

from pathlib import Path

from batch.web.signin import APPROVE, SUBMIT, Identity, role_groups, roles_of

HR_GROUP = "6f1c0a53-1111-4b0e-9d0e-2f5a1c3b4d5e"
IT_GROUP = "7a2d1b64-2222-4c1f-8e1f-3a6b2d4c5e6f"


def test_app_roles_are_read_and_others_ignored() -> None:
    assert roles_of({"roles": [SUBMIT, "Directory.Read"]}, {}) == (SUBMIT,)


def test_groups_named_in_the_config_grant_their_roles(tmp_path: Path) -> None:
    (tmp_path / "m365batch.toml").write_text(
        f'[web]\nsubmit_groups = ["{HR_GROUP}"]\napprove_groups = ["{IT_GROUP.upper()}"]\n',
        encoding="utf-8",
    )
    groups = role_groups(tmp_path / "home", cwd=tmp_path)
    assert roles_of({"groups": [HR_GROUP]}, groups) == (SUBMIT,)
    it = Identity("it@x", "IT", roles_of({"groups": [IT_GROUP, "other"]}, groups))
    assert it.roles == (APPROVE,) and it.can_approve and it.can_submit
    nobody = Identity("x@x", "X", roles_of({"groups": ["other"]}, groups))
    assert not nobody.can_submit and not nobody.can_approve


def test_without_a_config_only_app_roles_count(tmp_path: Path) -> None:
    assert role_groups(tmp_path / "home", cwd=tmp_path) == {SUBMIT: (), APPROVE: ()}
