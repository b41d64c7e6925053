"""The web app (``m365batch serve``): HR submits sheets, IT approves, the same library runs them.

    upload -> check (validate + plan, as ``m365batch plan``) -> submit -> approve
    -> run in the background (as ``m365batch apply``) -> rows, report, undo

Only the command line's ``serve`` imports this package. ``create_app`` builds the ASGI app
(:mod:`.app`); the pages live in :mod:`.pages` (submissions) and :mod:`.runpages` (runs);
sign-in in :mod:`.signin`, guards in :mod:`.guard`, durable state in :mod:`.store`, the
background work in :mod:`.work`, the socket and uvicorn in :mod:`.serving`.
"""

from batch.web.app import create_app
from batch.web.serving import listen, run

__all__ = ["create_app", "listen", "run"]
