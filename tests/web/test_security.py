"""Sign-in, roles, four eyes and CSRF, as a browser (and a forger) meets them."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import Any

from playwright.sync_api import expect

from tests.web.webkit import SAMPLE_SHEET, Server, sign_in, sign_out


def _status(url: str) -> tuple[int, str]:
    """GET without a session and without following redirects: status and Location."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Location") or ""


def _upload(page: Any) -> str:
    page.get_by_role("link", name="Upload").click()
    page.get_by_label("Sheet").set_input_files(SAMPLE_SHEET)
    page.get_by_role("button", name="Check sheet").click()
    page.get_by_role("button", name="Submit for approval").click()
    expect(page.get_by_text("Waiting for approval")).to_be_visible()
    return str(page.url)


def test_pages_need_sign_in_and_the_printed_address_admits_once(server: Server, page: Any) -> None:
    assert _status(server.base + "/healthz") == (200, "ok")
    for path in ("/", "/runs", "/approvals", "/submissions/x"):
        assert _status(server.base + path) == (303, "/signin")
    # sign-in needs the printed address first, and that address works once
    page.goto(server.base + "/signin")
    expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
    sign_in(page, server.url, "hr.coordinator")
    cookie = next(c for c in page.context.cookies() if c["name"] == "m365batch_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    other = page.context.browser.new_context(ignore_https_errors=True)
    try:
        stranger = other.new_page()
        assert stranger.goto(server.url).status == 403
    finally:
        other.close()


def test_a_forged_post_without_the_csrf_token_is_refused(server: Server, page: Any) -> None:
    sign_in(page, server.url, "hr.coordinator")
    submission = _upload(page)
    assert page.request.post(
        submission.replace("/submissions/", "/submissions/") + "/submit"
    ).status in (403,)
    sign_out(page)
    sign_in(page, server.base + "/signin", "it.admin")
    forged = page.request.post(submission + "/approve", form={"csrf": "forged"})
    assert forged.status == 403
    bare = page.request.post(submission + "/approve")
    assert bare.status == 403
    page.goto(submission)
    expect(page.get_by_text("Waiting for approval")).to_be_visible()


def test_nobody_approves_their_own_submission_and_a_rejection_gives_its_reason(
    server: Server, page: Any
) -> None:
    sign_in(page, server.url, "it.admin")
    own = _upload(page)
    expect(page.get_by_role("button", name="Approve and apply")).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert page.request.post(own + "/approve", form={"csrf": csrf}).status == 403
    sign_out(page)

    sign_in(page, server.base + "/signin", "hr.coordinator")
    theirs = _upload(page)
    sign_out(page)
    sign_in(page, server.base + "/signin", "it.admin")
    page.goto(theirs)
    page.get_by_label("Reason").fill("Row 25 names a license we do not sell.")
    page.get_by_role("button", name="Reject").click()
    sign_out(page)
    sign_in(page, server.base + "/signin", "hr.coordinator")
    page.goto(theirs)
    expect(page.get_by_text(re.compile("Rejected by it.admin@.*do not sell"))).to_be_visible()
