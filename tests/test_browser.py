"""The smoke run's HTML report in a real browser: headless Chromium (Debian's ``chromium``, which
``make test`` installs).

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages, each ended by a NUL byte, read by Chromium from fd 3 and written to fd 4), with the
standard library only. The page must load without a console error or an uncaught exception (also
after a click on every sortable column header), every ``<img>`` must decode (naturalWidth > 0),
every ``<table>`` must have a row of data in its body, the page must have a title, fit a
1280 px window's width, and colour no value against another dataset's paper value; a full-page
screenshot goes to the test's temporary directory. The report is the one of the session's smoke
run (the ``smoke_run`` fixture of tests/conftest.py).
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
WIDTH = 1280

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by `make test`)")


class Chromium:
    """A headless Chromium and one page in it, driven over the DevTools protocol on a pipe."""

    def __init__(self, profile: Path, width: int = WIDTH, height: int = 900, timeout: float = 60):
        self.timeout, self.events, self._next, self._buffer = timeout, [], 0, b""
        # the ends Chromium gets, moved to fds >= 10 so that bash's redirections onto 3 and 4 cannot
        # clobber them (bash, not sh: dash redirects one-digit fds only)
        to_chrome, self._send_fd = os.pipe()
        self._recv_fd, from_chrome = os.pipe()
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_chrome, from_chrome)]
        for fd in (to_chrome, from_chrome):
            os.close(fd)
        self.stderr = profile / "chromium.stderr"
        profile.mkdir(parents=True, exist_ok=True)
        flags = ["--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
                 "--mute-audio", "--disable-extensions", "--disable-background-networking",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}", "--remote-debugging-pipe"]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                ["bash", "-c", f'exec "$@" 3<&{ends[0]} 4>&{ends[1]}', "bash", CHROMIUM, *flags, "about:blank"],
                pass_fds=ends, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        for fd in ends:
            os.close(fd)
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable", session=True)
            self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    # --- the protocol ------------------------------------------------------------------------
    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._recv_fd], [], [], left)[0]:
                raise TimeoutError(f"no answer from Chromium; its stderr:\n{self.stderr.read_text()[-3000:]}")
            chunk = os.read(self._recv_fd, 1 << 20)
            if not chunk:
                raise ConnectionError(f"Chromium closed the pipe; its stderr:\n{self.stderr.read_text()[-3000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: bool = False, **params) -> dict:
        """Send a command (to the page's session if ``session``) and return its result; the events
        that arrive meanwhile are kept in :attr:`events`."""
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._send_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, event: str, since: int = 0) -> dict:
        """The first ``event`` among :attr:`events` from index ``since`` on, waiting for it if need be."""
        deadline = time.monotonic() + self.timeout
        seen = since
        while True:
            for e in self.events[seen:]:
                if e.get("method") == event:
                    return e
            seen = len(self.events)
            self.events.append(self._receive(deadline))

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    # --- what the tests use ------------------------------------------------------------------
    def open(self, url: str) -> None:
        since = len(self.events)  # the load event may come before navigate's own answer
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired", since)

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (failed loads...) so far."""
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console." + params["type"] + ": "
                             + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                d = params["exceptionDetails"]
                found.append(f"uncaught exception at {d.get('url', '')}:{d.get('lineNumber', -1) + 1}: "
                             + d.get("exception", {}).get("description", d.get("text", "")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"{params['entry']['source']}: {params['entry']['text']} {params['entry'].get('url', '')}")
        return found

    def screenshot(self, path: Path) -> tuple[int, int]:
        """A PNG of the whole page (not only the window); returns its CSS width and height."""
        size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
        width, height = int(size["width"]), int(size["height"])
        shot = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))
        return width, height

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close")
                except (OSError, TimeoutError, ConnectionError, RuntimeError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._send_fd, self._recv_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass


# What the page holds, read in the page itself after it has loaded.
IMAGES_JS = """Promise.all([...document.images].map((img, i) =>
  img.decode().then(() => null, e => String(e)).then(error => ({
    index: i, alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight, error}))))"""
# The heading a table sits under (the last one before it in the document), and its body rows
# that hold at least one data cell.
TABLES_JS = """[...document.querySelectorAll('table')].map((t, i) => {
  const h = [...document.querySelectorAll('h1, h2, h3')]
    .filter(h => h.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING).pop();
  const rows = [...t.tBodies].flatMap(b => [...b.rows]).filter(r => r.querySelector('td'));
  const filled = rows.flatMap(r => [...r.querySelectorAll('td')]).filter(c => !/^[\\s–-]*$/.test(c.textContent));
  return {index: i, heading: h ? h.textContent : '(none)', rows: rows.length, cells: filled.length};
})"""
# Cells coloured against the paper although the paper value beside them is another dataset's
# ("paper (mnist) ..." under a Fashion-MNIST value): the colours compare like with like only.
COLOURED_JS = """[...document.querySelectorAll('td')]
  .filter(td => td.style.background && /paper \\(/.test(td.textContent)).map(td => td.textContent)"""
# Two clicks (ascending, then descending) on every header of every sortable table; the rows of
# each table, as a multiset of their texts, must be the same before and after (none lost or doubled).
SORT_JS = """(() => {
  const rows = () => [...document.querySelectorAll('table.sortable')]
    .map(t => [...t.tBodies[0].rows].map(r => r.textContent).sort());
  const before = rows();
  document.querySelectorAll('table.sortable th').forEach(th => { th.click(); th.click(); });
  return {tables: before.length, same: JSON.stringify(before) === JSON.stringify(rows())};
})()"""


@pytest.fixture(scope="module")
def report(smoke_run) -> Path:
    workdir, out = smoke_run
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return workdir / "reports" / "report.html"


@pytest.fixture(scope="module")
def page(report, tmp_path_factory):
    """The report open in headless Chromium: (browser, what the page holds, the screenshot)."""
    tmp = tmp_path_factory.mktemp("browser")
    browser = Chromium(tmp / "profile")
    try:
        browser.open(report.as_uri())
        state = {"title": browser.evaluate("document.title"),
                 "h1": browser.evaluate("document.querySelector('h1') ? document.querySelector('h1').textContent : ''"),
                 "images": browser.evaluate(IMAGES_JS), "tables": browser.evaluate(TABLES_JS),
                 "coloured": browser.evaluate(COLOURED_JS),
                 "overflow": browser.evaluate("document.documentElement.scrollWidth - window.innerWidth"),
                 "loaded": list(browser.errors())}
        shot = tmp / "report.png"
        state["size"] = browser.screenshot(shot)
        state["sort"] = browser.evaluate(SORT_JS)
        state["errors"] = browser.errors()
        yield browser, state, shot
    finally:
        browser.close()


def test_report_loads_without_console_errors(page):
    _, state, _ = page
    assert state["loaded"] == [], "\n".join(state["loaded"])
    assert state["errors"] == [], "after clicks on the sortable headers:\n" + "\n".join(state["errors"])


def test_report_has_a_title(page):
    _, state, _ = page
    assert state["title"].strip() and state["h1"].strip()


def test_every_image_decodes(page):
    _, state, _ = page
    assert len(state["images"]) == 3  # Figure 2, Figure 3, the vicinity samples
    broken = [i for i in state["images"] if not i["complete"] or i["width"] == 0 or i["error"]]
    assert broken == [], broken
    assert all(i["width"] >= 300 and i["height"] >= 100 for i in state["images"]), state["images"]


def test_every_table_has_rows_of_data(page):
    _, state, _ = page
    assert len(state["tables"]) >= 14  # the smoke config's 14 tables, provenance, job times
    empty = [t for t in state["tables"] if t["rows"] == 0 or t["cells"] == 0]
    assert empty == [], empty


def test_page_fits_the_window_width(page):
    _, state, _ = page
    assert state["overflow"] <= 0, f"the page is {state['overflow']} px wider than a {WIDTH} px window"


def test_no_cell_is_coloured_against_another_datasets_paper_value(page):
    _, state, _ = page
    assert state["coloured"] == [], state["coloured"]


def test_sorting_a_table_keeps_its_rows(page):
    _, state, _ = page
    assert state["sort"]["tables"] >= 10 and state["sort"]["same"], state["sort"]


def test_full_page_screenshot_is_saved(page):
    _, state, shot = page
    width, height = state["size"]
    assert height > 2000, state["size"]  # the whole page, not the first screen only
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (width, height)
