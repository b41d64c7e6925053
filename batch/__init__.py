"""m365batch: bulk Microsoft 365 license changes from spreadsheets through Microsoft Graph.

The package is laid out by pipeline stage::

    sources   read CSV/XLSX sheets, every cell as text
    catalog   SKU and service-plan names (Microsoft's reference, merged with the tenant)
    validate  check rows, collect findings
    tenant    read the tenant's state (SKUs, users, groups)
    plan      compute the minimal changes; the plan is a value
    engine    send operations through Graph $batch, throttling handled
    journal   record every operation before and after it is sent
    reconcile read back and compare with the desired state
    report    write the report workbook

``graph`` and ``auth`` are the Microsoft Graph client; ``simulator`` is the built-in
simulated tenant, a real HTTPS server; ``cli`` is the thin command line.
"""

__version__ = "0.1.0"

import logging as _logging

# Library practice: no log output unless the application configures it (the CLI logs to a
# file under M365BATCH_HOME); without this, Python's last-resort handler echoes errors.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
