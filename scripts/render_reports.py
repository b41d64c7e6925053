"""Render every kind of report workbook to PNG pages, to look at them before a release.

Runs the CLI against a fresh built-in simulated tenant (its own home folder, so nothing
else is touched) on the shipped samples, writes each workbook kind, then prints every
workbook to PDF with LibreOffice (headless) and cuts the pages into PNGs with pdftoppm:

    python scripts/render_reports.py OUT_FOLDER [--dpi 70] [--only apply,true-up]

Workbooks: validate, plan, apply, second apply, undo, true-up, migrate dry run and run,
export, template. Prints, per workbook, its sheets' pages and where the PNGs went. The
pictures are for people to look at; they are not kept in the repository.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run m365batch against the built-in simulated tenant kept in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env["M365BATCH_HOME"] = str(home)
    env.pop("M365BATCH_SIMULATOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "batch", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=home,
        check=False,
    )
    if done.returncode not in (0, 3):
        print(f"  m365batch {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def make_workbooks(work: Path, books: Path, only: set[str] | None) -> list[Path]:
    """Every workbook kind, written into ``books``; returns the paths written."""
    home = work / "home"
    home.mkdir()
    sheet = work / "onboarding.xlsx"
    shutil.copy(ROOT / "samples" / "onboarding.xlsx", sheet)
    steps: list[tuple[str, list[str]]] = [
        ("validate", ["validate", str(sheet)]),
        ("plan", ["plan", str(sheet)]),
        ("apply", ["apply", str(sheet), "--yes"]),
        ("apply-again", ["apply", str(sheet), "--yes"]),
        (
            "true-up",
            ["true-up", "--prices", str(ROOT / "templates" / "prices-template.csv")],
        ),
        (
            "migrate-dry-run",
            ["migrate", "--map", str(ROOT / "samples" / "migration-map.csv"), "--dry-run"],
        ),
        ("migrate", ["migrate", "--map", str(ROOT / "samples" / "migration-map.csv"), "--yes"]),
        ("export", ["export"]),
        ("template", ["template"]),
    ]
    written = []
    first_run = ""
    for name, args in steps:
        target = books / f"{name}.xlsx"
        done = cli(home, *args, "--output", str(target))
        if name == "apply":
            found = re.search(r"^Run (\S+):", done.stdout, re.MULTILINE)
            first_run = found.group(1) if found else ""
        if target.exists() and (only is None or name in only):
            written.append(target)
    if first_run and (only is None or "undo" in only):
        target = books / "undo.xlsx"
        cli(home, "undo", first_run, "--yes", "--output", str(target))
        if target.exists():
            written.append(target)
    return written


def render(book: Path, out: Path, dpi: int) -> list[Path]:
    """Print ``book`` to PDF with LibreOffice, then each page to ``out/<name>-N.png``."""
    profile = out / ".lo-profile"
    subprocess.run(
        [
            "soffice",
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(book.parent),
            str(book),
        ],
        capture_output=True,
        check=True,
    )
    pdf = book.with_suffix(".pdf")
    prefix = out / book.stem
    subprocess.run(
        ["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(prefix)], capture_output=True, check=True
    )
    return sorted(
        p for p in out.glob(f"{book.stem}-*.png") if p.stem[len(book.stem) + 1 :].isdigit()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="Folder for the PNG pages (created).")
    parser.add_argument("--dpi", type=int, default=70, help="Resolution of the pages.")
    parser.add_argument("--only", help="Comma-separated workbook names (default: all).")
    args = parser.parse_args()
    missing = [tool for tool in ("soffice", "pdftoppm") if shutil.which(tool) is None]
    if missing:
        print(
            f"Needs {', '.join(missing)}: apt-get install libreoffice-calc poppler-utils",
            file=sys.stderr,
        )
        return 1
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    only = set(args.only.split(",")) if args.only else None
    with tempfile.TemporaryDirectory(prefix="m365batch-render-") as temp:
        work = Path(temp)
        books = out / "workbooks"
        books.mkdir(exist_ok=True)
        for old in [*books.glob("*.xlsx"), *books.glob("*.pdf")]:
            old.unlink()
        for book in make_workbooks(work, books, only):
            pages = render(book, out, args.dpi)
            print(f"{book.stem:16} {len(pages):3} page(s)  {out / book.stem}-*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
