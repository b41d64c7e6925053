"""m365batch: bulk Microsoft 365 license changes from spreadsheets through Microsoft Graph.

The package is laid out by pipeline stage, each a package that imports only the ones above it::

    intake/    read CSV/XLSX sheets (every cell as text), the SKU catalog, validate rows
    graph/     Microsoft Graph: msal sign-in, the HTTPS client, the $batch engine
    run/       the tenant's state, the plan, journaled execution, the read-back
    reports/   the report workbooks (run, validation) and the input template
    jobs/      onboarding, export, the true-up and the CSP migration, end to end
    cli/       the thin command line (click lives only here)

Beside them: ``errors``, ``config``, ``logs``, ``status`` (the row statuses), ``files``
(atomic writes) and ``crashpoints`` are the foundation every stage uses; ``simulator/`` is
the built-in simulated tenant, a real HTTPS server the product talks to like any tenant.
"""

__version__ = "0.1.0"

import logging as _logging

# Library practice: no log output unless the application configures it (the CLI logs to a
# file under M365BATCH_HOME); without this, Python's last-resort handler echoes errors.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
