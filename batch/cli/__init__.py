"""The ``m365batch`` command line: parse, call the library, print. Nothing else.

This package is the only place that imports click. ``app`` holds the ``cli`` group, the
error mapping and shared helpers; the commands live by theme in ``tenant`` (read and
report), ``runs`` (plan, apply, resume, runs, undo), ``migrate``, ``simulator`` and
``serve`` (the web app).
"""

from batch.cli import migrate, runs, serve, simulator, tenant  # noqa: F401 - importing registers the commands
from batch.cli.app import cli

__all__ = ["cli"]
