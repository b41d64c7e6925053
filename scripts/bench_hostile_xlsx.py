"""Peak memory of `m365batch validate` on the hostile XLSX files, and what it says.

    python scripts/bench_hostile_xlsx.py

The files (tests/fixtures/hostile_xlsx.py) are a few kilobytes to a megabyte but would make
a reader allocate 10 to 549 GB; each must be refused with exit 1, in one line, well under
1 GB of peak RSS. Prints one line per file.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.hostile_xlsx import write_all  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hostile-xlsx-") as tmp:
        for name, path in write_all(Path(tmp)).items():
            # a fresh interpreter per file, so the peak is this file's alone
            probe = (
                "import resource, subprocess, sys;"
                "r = subprocess.run([sys.executable, '-m', 'batch', 'validate', sys.argv[1]],"
                " capture_output=True, text=True);"
                "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
                "print(r.stderr.strip())"
            )
            out = subprocess.run(
                [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            code, peak_kib = (int(x) for x in out[0].split())
            lines = out[1:]
            print(
                f"{name}: {path.stat().st_size:,} bytes; exit {code}; {len(lines)} line(s); "
                f"peak RSS {peak_kib / 1024:.0f} MiB (target < 1,024 MiB)"
            )
            print(f"  {lines[0][:160] if lines else ''}")


if __name__ == "__main__":
    main()
