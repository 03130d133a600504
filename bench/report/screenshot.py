"""``docs/report.png``: the first screen of a run's HTML report, shot by headless Chromium
(``docs/report_full.png``: the whole page), and ``docs/report.json`` beside it, which records the stamp of the code that renders reports (the
tables and the page) and the run it shows. ``tests/test_docs.py`` fails when that stamp is not
the current code's: the picture in the README then shows a report this code no longer makes.

    python -m bench.report.screenshot reports/default/report.html   # after `make run`
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.io import write_json

__all__ = ["RENDERING", "rendering_stamp", "shoot", "shoot_page"]

ROOT = Path(__file__).resolve().parents[2]
#: the code that decides what a report shows and how: the page and every table
RENDERING = ("bench/report/html.py", "bench/tables/*.py")


def rendering_stamp(root: Path = ROOT) -> str:
    """SHA-256 (12 hex digits) of what the rendering code executes: each file's syntax tree
    without docstrings (:mod:`bench.workflow.provenance`'s digest), in path order, so that a
    comment or a docstring changes nothing."""
    from bench.workflow.provenance import executed_digest

    h = hashlib.sha256()
    for path in sorted(p for pattern in RENDERING for p in root.glob(pattern)):
        h.update(str(path.relative_to(root)).encode() + b"\0" + executed_digest(path) + b"\0")
    return h.hexdigest()[:12]


def shoot(report: Path, out: Path, width: int = 1280, height: int = 900) -> Path:
    """A ``width`` × ``height`` screenshot of ``report`` (an HTML file) by headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium; `make install` does)")
    with tempfile.TemporaryDirectory() as profile:
        flags = ["--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run", f"--user-data-dir={profile}",
                 f"--window-size={width},{height}", f"--screenshot={out.resolve()}"]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
        subprocess.run([chromium, *flags, report.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    return out


def shoot_page(report: Path, out: Path, width: int = 1280, tallest: int = 40000) -> Path:
    """The whole page: a shot ``tallest`` pixels high, cut below the last row that is not the
    page's background (Chromium's command line shoots the window, not the page)."""
    from PIL import Image, ImageChops

    shoot(report, out, width, tallest)
    with Image.open(out) as image:
        rgb = image.convert("RGB")
        background = Image.new("RGB", rgb.size, rgb.getpixel((rgb.width - 1, rgb.height - 1)))
        box = ImageChops.difference(rgb, background).getbbox()
        page = rgb.crop((0, 0, rgb.width, min(rgb.height, (box[3] if box else rgb.height) + 40)))
        page.quantize(256).save(out, optimize=True)  # a palette: a tenth of the bytes, the same to the eye
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", type=Path, help="a run's report.html (reports/<run>/report.html)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    args = p.parse_args(argv)
    shoot(args.report, args.out)
    shoot_page(args.report, args.out.with_name(args.out.stem + "_full.png"))
    run = args.report.parent.name
    write_json({"rendering": rendering_stamp(), "run": run, "report": f"reports/{run}/report.html"},
               args.out.with_suffix(".json"))


if __name__ == "__main__":
    main()
