"""`scaling report`: the figures of a real sweep, and report.html checked in headless Chromium.

One small real sweep per module (3 widths x 2 data sizes of a tiny GPT). The browser test drives
Debian's chromium over the Chrome DevTools protocol: it loads report.html from disk, collects
console errors and uncaught exceptions, inspects the rendered plotly figures and the run table
(filters and sorting included), and keeps a full-page screenshot next to the report.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.cli import main as cli
from scaling.plan import plan_run
from scaling.store import load_runs
from scaling.train import InjectedFailure, train
from tests.conftest import TINY_GPT, tiny

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SWEEP = [*TINY_GPT, "sweep=grid", "sweep.name=ladder",
         "++sweep.axes={model.width:[16,32,48],budget.tokens:[8192,16384]}"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--remote-allow-origins=*",
                  "--remote-debugging-port=0", "--window-size=1400,1000", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A real sweep trained once for the module: 6 runs (3 widths x 2 data sizes) and one failed run."""
    root = tmp_path_factory.mktemp("report") / "runs"
    assert cli(["sweep", *SWEEP, f"run.root={root}"]) == 0
    failing = plan_run(tiny(TINY_GPT, root, "sweep.name=ladder", "model.width=64", "budget.tokens=4096",
                            "trainer.fail_at_step=5"))
    with pytest.raises(InjectedFailure):
        train(failing)
    return root / "ladder"


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory) -> Path:
    """`scaling report SWEEP -o DIR` run once for the module; returns DIR."""
    out = tmp_path_factory.mktemp("report") / "out"
    assert cli(["report", str(sweep), "-o", str(out), "--target-flops", "1e11", "--bootstrap", "60"]) == 0
    return out


def test_report_writes_every_figure_as_png_and_svg(report):
    for name in ("loss_vs_compute", "loss_vs_params", "loss_vs_data", "isoflop", "allocation", "residuals"):
        png, svg = report / f"{name}.png", report / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, name
        assert "<svg" in svg.read_text()[:2000], name
    page = (report / "report.html").read_text()
    assert "Plotly.newPlot" in page and not re.search(r"<script[^>]*\ssrc=", page)  # plotly.js inline: offline
    assert len(page) > 3_000_000  # plotly.js itself is inside


def test_report_numbers_match_the_fit_command(sweep, report, capsys):
    """The law in the report is the law `scaling fit` finds on the same sweep."""
    assert cli(["fit", str(sweep), "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    page = (report / "report.html").read_text()
    for value in fitted["params"].values():
        assert (f"{value:.4g}" if 1e-3 <= abs(value) < 1e5 else f"{value:.3e}") in page
    assert page.count('<tr data-status="completed"') == 6 and page.count('<tr data-status="failed"') == 1


def test_report_of_a_table_without_curves_and_bad_sources(sweep, tmp_path, capsys):
    table = tmp_path / "runs.parquet"
    load_runs(sweep).to_parquet(table)
    assert cli(["report", str(table), "-o", str(tmp_path / "out"), "--bootstrap", "0", "--law", "params"]) == 0
    assert (tmp_path / "out" / "loss_vs_compute.png").exists() and (tmp_path / "out" / "report.html").exists()
    out = capsys.readouterr().out
    assert "params fit of 6 runs" in out
    assert cli(["report", str(tmp_path / "nothing"), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    pd.DataFrame({"a": [1, 2]}).to_csv(tmp_path / "bad.csv", index=False)
    assert cli(["report", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "x")]) == 2
    assert "needs N, D, C and loss" in capsys.readouterr().err


def test_isoflop_table_gets_every_figure_and_a_report(tmp_path):
    """A synthetic IsoFLOP table (known Chinchilla law): parabolas, minima, allocation lines, backtest, report."""
    from scaling.analysis.analyse import analyse
    from scaling.analysis.report import write_report
    from scaling.analysis.series import FIGURE_NAMES, allocation_lines, isoflop_profiles
    from scaling.analysis.synthetic import isoflop_table

    runs = isoflop_table(budgets=np.geomspace(1e18, 1e20, 4), sizes=5, noise=0.002)
    an = analyse(runs, law="chinchilla", bootstrap=10)
    source, profiles = isoflop_profiles(an)
    budgets = pd.DataFrame(an.approaches["isoflop"].details["budgets"])
    assert source == "data" and len(profiles) == 4
    assert [p["N_min"] for p in profiles] == pytest.approx(list(budgets["N_opt"]), rel=1e-6)
    lines = {line["name"]: line for line in allocation_lines(an)}
    assert lines["chinchilla"]["a"] == pytest.approx(0.28 / 0.62, abs=0.03)  # the truth: beta / (alpha + beta)
    assert lines["isoflop"]["a"] == pytest.approx(0.28 / 0.62, abs=0.03)
    assert (lines["chinchilla"]["N_opt_lo"] <= lines["chinchilla"]["N_opt_hi"]).all()
    written = write_report(an, tmp_path, "synthetic")
    assert {p.stem for p in written["figures"]} == set(FIGURE_NAMES) - {"probes", "branches", "lr_transfer"}
    page = written["html"].read_text()
    assert page.count('<section class="figure') == 7 and "Fitted on the 16 cheapest runs" in page


def test_probe_columns_get_a_figure_with_a_power_law():
    from scaling.analysis.analyse import analyse
    from scaling.analysis.figures import make_figures
    from scaling.analysis.series import probe_fits

    N = np.array([1e4, 3e4, 1e5, 3e5, 1e6, 3e6])
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(6)], "status": "completed", "family": "gpt",
                         "N": N, "D": 2e5, "C": 6 * N * 2e5, "loss": 2 + 40 * N**-0.3,
                         "probe_knn1": 0.05 * N**0.2, "probe_linear": [0.5, 0.1, 0.9, 0.2, 0.7, 0.3]})
    an = analyse(runs, law="params", bootstrap=0)
    fits = {(f["metric"], f["x"]): f for f in probe_fits(an)}
    assert fits[("probe_knn1", "N")]["fit"]["exponent"] == pytest.approx(0.2, abs=1e-9)
    assert fits[("probe_linear", "N")]["fit"] is None and "no power law" in fits[("probe_linear", "N")]["note"]
    assert "probes" in make_figures(an)


# --------------------------------------------------------------------------- browser


class DevTools:
    """A minimal Chrome DevTools protocol client over one page's websocket."""

    def __init__(self, url: str):
        import websocket

        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id, self.events = 0, []

    def call(self, method: str, **params):
        """Send a command and return its result (events that arrive meanwhile are kept)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        """Block until an event named `method` arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        out = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(params["entry"].get("text", "")[:500])
        return out


@pytest.fixture
def chromium(tmp_path):
    """A headless Debian chromium with remote debugging; yields a DevTools client on its page."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    profile = tmp_path / "profile"
    process = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = _devtools_port(profile / "DevToolsActivePort", process)
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        client = DevTools(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"])
        yield client
        client.ws.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _devtools_port(path: Path, process: subprocess.Popen, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text().split()[0])
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


INSPECT = """(async () => {
  const deadline = Date.now() + 30000;
  const sections = () => Array.from(document.querySelectorAll('section.figure'));
  while (Date.now() < deadline &&
         !sections().every(s => s.querySelector('.main-svg') && s.querySelector('.plotly-graph-div').data)) {
    await new Promise(r => setTimeout(r, 100));
  }
  const figures = {};
  for (const s of sections()) {
    const gd = s.querySelector('.plotly-graph-div');
    figures[s.dataset.figure] = {svg: s.querySelectorAll('.main-svg').length,
      drawn: s.querySelectorAll('.main-svg path, .main-svg .point').length,
      traces: (gd._fullData || []).map(t => ({meta: t.meta || null, name: t.name || null, points: t._length,
        runs: Array.isArray(t.text) ? new Set(t.text).size : null}))};
  }
  const rows = () => Array.from(document.querySelectorAll('#runs tbody tr'));
  const visible = () => rows().filter(r => r.style.display !== 'none').length;
  const result = {figures, rows: rows().length, count: document.getElementById('run-count').textContent};
  const status = document.getElementById('filter-status');
  status.value = 'failed'; status.dispatchEvent(new Event('change'));
  result.failedShown = visible();
  status.value = ''; status.dispatchEvent(new Event('change'));
  const family = document.getElementById('filter-family');
  family.value = 'gpt'; family.dispatchEvent(new Event('change'));
  result.gptShown = visible();
  family.value = ''; family.dispatchEvent(new Event('change'));
  const headers = Array.from(document.querySelectorAll('#runs th'));
  const lossCol = headers.findIndex(h => h.textContent === 'loss');
  headers[lossCol].click();
  result.lossAscending = rows().map(r => parseFloat(r.cells[lossCol].dataset.value));
  headers[lossCol].click();
  result.lossDescending = rows().map(r => parseFloat(r.cells[lossCol].dataset.value));
  headers[0].click();
  result.hover = figures.loss_vs_compute ? document.getElementById('fig-loss_vs_compute').data
      .find(t => t.meta === 'final').text[0] : null;
  return result;
})()"""


@pytest.mark.browser
def test_report_renders_in_headless_chromium(report, chromium):
    chromium.call("Page.enable")
    chromium.call("Runtime.enable")
    chromium.call("Log.enable")
    chromium.call("Page.navigate", url=(report / "report.html").as_uri())
    chromium.wait_for("Page.loadEventFired")
    found = chromium.evaluate(INSPECT)
    _screenshot(chromium, report / "screenshot.png")
    assert chromium.errors() == []
    assert set(found["figures"]) >= {"loss_vs_compute", "loss_vs_params", "loss_vs_data", "isoflop", "allocation",
                                     "residuals"}
    for name, figure in found["figures"].items():
        assert figure["svg"] >= 1 and figure["drawn"] > 5 and figure["traces"], name
    traces = found["figures"]["loss_vs_compute"]["traces"]
    curves = [t for t in traces if t["meta"] == "curve"]
    # one trace per size, its runs parted by gaps: every one of the 6 completed runs' curves is drawn
    assert len(curves) == 3 and all(t["points"] >= 2 for t in curves) and sum(t["runs"] for t in curves) == 6
    assert any(t["meta"] == "frontier" for t in traces) and any(t["meta"] == "target" for t in traces)
    assert found["rows"] == 7 and found["count"] == "7 of 7 runs"  # one row per run, the failed one too
    assert found["failedShown"] == 1 and found["gptShown"] == 7
    ascending, descending = found["lossAscending"], found["lossDescending"]
    assert ascending[-1] is None and descending[-1] is None  # the failed run has no loss: last either way
    assert ascending[:-1] == sorted(ascending[:-1]) and descending[:-1] == sorted(descending[:-1], reverse=True)
    assert "run " in found["hover"] and "width" in found["hover"] and "loss" in found["hover"]
    assert (report / "screenshot.png").stat().st_size > 50_000


def _screenshot(client: DevTools, path: Path) -> None:
    """A full-page PNG of the report (kept next to report.html)."""
    size = client.call("Page.getLayoutMetrics")["cssContentSize"]
    client.call("Emulation.setDeviceMetricsOverride", width=1400, height=int(size["height"]), deviceScaleFactor=1,
                mobile=False)
    time.sleep(0.5)  # plotly's responsive resize
    shot = client.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    path.write_bytes(base64.b64decode(shot["data"]))
