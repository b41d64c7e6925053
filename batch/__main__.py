"""``python -m batch``: the same as the ``m365batch`` command."""

from batch.cli import cli

cli()
