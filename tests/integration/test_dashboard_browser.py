"""The web dashboard in a real headless Chromium against a live `archbench up`.

Submit through the form, see located validation errors, watch the comparison finish over the
event stream, read the verdict, and check a screenshot of the comparison page is not blank.
Under CI=true a missing chromium or chromedriver fails (``.ci/run`` installs them).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.support.helpers import tiny_spec
from tests.support.services import CI, Service, base_env, free_port, start, stop, wait_http

pytestmark = [pytest.mark.worker, pytest.mark.slow]

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)


def _which(names: tuple[str, ...]) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Debian's chromedriver (no driver download)."""
    browser_bin, driver_bin = _which(CHROMIUM), _which(DRIVER)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service as DriverService
    except ImportError:
        browser_bin = None
    if not browser_bin or not driver_bin:
        msg = "chromium, chromium-driver and selenium are needed for the dashboard test"
        if CI:
            pytest.fail(msg + "; .ci/run installs them")
        pytest.skip(msg)
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser_bin
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1700",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=DriverService(executable_path=driver_bin))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`archbench up` with its own data folder and port (auth off, the embedded default)."""
    data_dir = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    env = base_env(data_dir)
    svc = Service(url=f"http://127.0.0.1:{port}", env=env, data_dir=data_dir)
    svc.logs = {"up": data_dir / "up.log"}
    cmd = [sys.executable, "-m", "cli.main", "up", "--port", str(port), "--data-dir", str(data_dir)]
    svc.procs["up"] = start(cmd, env, svc.logs["up"])
    try:
        wait_http(svc.url, svc.procs["up"], svc.logs["up"], timeout=90)
        yield svc
    finally:
        stop(svc.procs["up"], sig=signal.SIGINT)


def _wait(driver: Any, cond: Any, timeout: float, what: str) -> Any:
    """Poll ``cond`` until it is truthy. The page re-renders as events arrive, so an element
    found in one poll may be gone by the next call on it: such a poll simply counts as no."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.25, ignored_exceptions=[StaleElementReferenceException]
    )
    try:
        return wait.until(cond)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def _texts(driver: Any, css: str) -> list[str]:
    """The rendered text of every element matching ``css``, read in one script call (no element
    reference outlives it, so a re-render cannot make it stale)."""
    script = "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText);"
    return [str(t) for t in driver.execute_script(script, css)]


def _text(driver: Any, css: str) -> str:
    found = _texts(driver, css)
    return found[0] if found else ""


def _paste_and_submit(driver: Any, spec: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    area = _wait(driver, lambda d: d.find_element(By.ID, "spec"), 10, "the spec textarea")
    driver.execute_script("arguments[0].value = arguments[1];", area, json.dumps(spec, indent=2))
    driver.find_element(By.ID, "submit").click()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)


LONG_NAME = "mlp_with_a_long_descriptive_name_the_dashboard_used_to_clip"  # 64 at most


def test_dashboard_submit_watch_report(up: Service, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(up.url + "/#/new")
    assert driver.title == "archbench"

    # A bad spec: the 422's located error appears next to the field it points at.
    bad = tiny_spec("bad", seeds=[0], epochs=1)
    bad["variants"][0]["layers"][0]["kernel_size"] = [40, 40]
    _paste_and_submit(driver, bad)
    loc = "variants.0.layers.0.kernel_size"
    err = _wait(
        driver,
        lambda d: _texts(d, f'.field-error[data-loc="{loc}"]'),
        20,
        "the located validation error",
    )[0]
    assert "larger" in err, err
    classes = driver.execute_script(
        "return document.querySelector(arguments[0]).className;", f'.node[data-path="{loc}"]'
    )
    assert "has-error" in classes
    assert "kernel_size" in _text(driver, "#error-list li")

    # A good spec: the form leads to the comparison page, which follows the event stream.
    good = tiny_spec("dashboard e2e", seeds=[0], epochs=2)
    good["variants"][-1]["name"] = LONG_NAME  # shown whole, never clipped
    _paste_and_submit(driver, good)
    _wait(driver, lambda d: "#/c/" in d.current_url, 20, "the comparison page")
    cid = driver.current_url.rsplit("/", 1)[-1]
    _wait(
        driver,
        lambda d: _text(d, "#c-status") in ("succeeded", "failed", "cancelled"),
        240,
        "the comparison to finish (status from the event stream)",
    )
    assert _text(driver, "#c-status") == "succeeded", up.log("up")[-3000:]
    _wait(driver, lambda d: _text(d, "#report-final") == "(final)", 30, "the final report")
    verdict = _text(driver, "#verdict")
    assert verdict not in ("", "No report yet.", "No verdict yet."), verdict
    # One labelled answer per level, the score's first, each with its label.
    answers = driver.execute_script(
        "return Array.from(document.querySelectorAll('#verdict .answer'),"
        " p => [p.dataset.level, p.querySelector('.level').textContent]);"
    )
    assert answers, verdict
    assert answers[0] == ["score", "Score"], answers
    assert all(level.lower() == key for key, level in answers), answers
    # The pairwise table: one seed a variant, so the one pair is untested, and says so.
    pairs = _texts(driver, "#pairwise tbody tr")
    assert len(pairs) == 1, pairs
    assert "untested" in pairs[0], pairs
    # Numbers are written as the report writes them (core.report.format): 97.53%.
    means = [r.split()[4] for r in _texts(driver, "#variants tbody tr")]
    assert all(re.fullmatch(r"\d{1,3}\.\d\d%", m) for m in means), means
    assert _text(driver, "#design").startswith("Design: ")
    rows = _texts(driver, "#trials tbody tr")
    assert len(rows) == 2, rows
    assert all("succeeded" in r for r in rows), rows
    # A long variant name wraps inside its cell, and the headers wrap too: every table fits
    # its panel (nothing cut off or pushed out of sight), and the name is all there.
    assert any(LONG_NAME in r.replace("\n", "") for r in rows), rows
    overflow = driver.execute_script(
        "return Array.from(document.querySelectorAll('table.grid'), t =>"
        " [t.id, t.scrollWidth - t.parentElement.clientWidth]).filter(([, d]) => d > 1);"
    )
    assert overflow == [], overflow
    clipped = driver.execute_script(
        "return Array.from(document.querySelectorAll('td.name, table.grid th'), c =>"
        " c.scrollWidth > c.clientWidth + 1 ? c.innerText : null).filter(x => x);"
    )
    assert clipped == [], clipped
    headers = _texts(driver, "#trials thead th")
    assert [h.lower() for h in headers[4:7]] == ["test accuracy", "test loss", "train seconds"]
    assert "epochs 4/4" in _text(driver, "#c-progress")
    links = dict(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('.downloads a'),"
            " a => [a.innerText, a.href]);"
        )
    )
    assert links["report.md"].endswith(f"/v1/comparisons/{cid}/report?format=md")
    assert links["metrics.csv"].endswith(f"/v1/comparisons/{cid}/metrics?format=csv")
    assert links["report.png"].endswith(f"/v1/comparisons/{cid}/report.png")
    assert links["predictions.csv"].endswith(f"/v1/comparisons/{cid}/predictions?format=csv")

    # "Do they differ?": the pair's sentence and its CKA heatmaps (a loaded image).
    sentence = _wait(driver, lambda d: _texts(d, "#diff-sentences li"), 20, "the differences")[0]
    assert " disagree on " in sentence, sentence
    _wait(
        driver,
        lambda d: d.execute_script(
            "const i = document.querySelector('#similarity-png');"
            " return !i.hidden && i.complete && i.naturalWidth > 0;"
        ),
        20,
        "the CKA heatmaps",
    )

    # The learning curves were drawn: the plot area (left of the legend) holds coloured lines.
    curves = _pixels(
        _wait(driver, lambda d: d.find_element(By.ID, "curves").screenshot_as_png, 10, "curves")
    )[:, :-140]
    coloured = (curves.max(axis=2) - curves.min(axis=2)) > 60
    assert coloured.sum() > 300, f"no learning-curve lines drawn ({coloured.sum()} px)"

    shot = tmp_path / "comparison.png"
    assert driver.save_screenshot(str(shot))
    shutil.copy(shot, up.data_dir / "comparison.png")  # kept with the test's data for a look
    page = _pixels(shot.read_bytes())
    assert page.shape[0] > 500
    assert page.shape[1] > 800
    assert page.std() > 15, f"the screenshot looks blank (pixel std {page.std():.1f})"

    # The list shows it with its status.
    driver.get(up.url + "/#/")
    row = _wait(
        driver,
        lambda d: _texts(d, f'#comparisons tr[data-id="{cid}"]'),
        20,
        "the comparison in the list",
    )[0]
    assert "succeeded" in row, row
    assert "dashboard e2e" in row, row


def test_a_residual_variants_graph_is_drawn(up: Service, browser: Any, tmp_path: Path) -> None:
    """The comparison page draws each variant's graph: a node per layer (and the input), an
    edge per input, the residual's two branches side by side, a stack in one column."""
    from tests.support.graphs import GRAPHS
    from tests.support.helpers import small_mlp

    residual = {"name": "res", "layers": GRAPHS["resnet_basic"]}
    spec = tiny_spec("dashboard graph", seeds=[0], epochs=1, variants=[small_mlp("mlp"), residual])
    driver = browser
    driver.get(up.url + "/#/new")
    _paste_and_submit(driver, spec)
    _wait(driver, lambda d: "#/c/" in d.current_url, 20, "the comparison page")
    cid = driver.current_url.rsplit("/", 1)[-1]
    count = (
        "return document.querySelectorAll("
        '`svg.graph[data-variant="${arguments[0]}"] ${arguments[1]}`).length;'
    )
    edges = sum(len(layer["inputs"]) for layer in GRAPHS["resnet_basic"])
    _wait(
        driver,
        lambda d: d.execute_script(count, "res", "path.gedge") == edges,
        30,
        f"the residual graph's {edges} edges",
    )
    assert driver.execute_script(count, "res", "g.gnode") == len(GRAPHS["resnet_basic"]) + 1
    assert driver.execute_script(count, "mlp", "path.gedge") == 3
    where = (
        'return Array.from(document.querySelectorAll(`svg.graph[data-variant="${arguments[0]}"]'
        " g.gnode`), g => [g.dataset.name, g.getBoundingClientRect().x]);"
    )
    res = dict(driver.execute_script(where, "res"))
    assert res["proj"] != res["a1"]  # the shortcut beside the main path
    assert len({round(x) for _, x in driver.execute_script(where, "mlp")}) == 1  # one column
    shapes = driver.execute_script(  # SVG text has no innerText
        "return Array.from(document.querySelectorAll(arguments[0]), t => t.textContent);",
        'svg.graph[data-variant="res"] g.gnode[data-name="add"] text.gshape',
    )
    assert shapes == ["28\u00d728\u00d78"], shapes
    caption = _text(driver, '.graph-figure[data-variant="res"] figcaption')
    assert "1 merge" in caption, caption

    from selenium.webdriver.common.by import By

    panel = driver.find_element(By.ID, "graphs")
    driver.execute_script("arguments[0].scrollIntoView();", panel)
    png = panel.screenshot_as_png
    (tmp_path / "graphs.png").write_bytes(png)
    shutil.copy(tmp_path / "graphs.png", up.data_dir / "graphs.png")  # kept for a look
    pixels = _pixels(png)
    assert pixels.std() > 15, f"the graphs look blank (pixel std {pixels.std():.1f})"
    with up.client() as client:  # the trials are not needed: free the worker
        client.post(f"/v1/comparisons/{cid}/cancel")


def test_api_docs_link_renders_from_local_files(up: Service, browser: Any) -> None:
    """The dashboard's "API docs" link opens Swagger UI, drawn from archbench's own files."""
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(up.url + "/")
    link = _wait(driver, lambda d: d.find_element(By.LINK_TEXT, "API docs"), 20, "the docs link")
    link.click()
    _wait(driver, lambda d: d.current_url.endswith("/docs"), 20, "the docs page")
    ops = _wait(
        driver,
        lambda d: [t for t in _texts(d, ".opblock-summary-path") if "/v1/comparisons" in t],
        30,
        "Swagger UI to draw the operations",
    )
    assert any("{comparison_id}" in t for t in ops), ops
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert loaded, "the page loaded no resources at all"
    assert all(str(u).startswith(up.url + "/") for u in loaded), loaded


@pytest.fixture(scope="module")
def up_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """`archbench up` with ARCHBENCH_AUTH=true and one key, created with the CLI beforehand."""
    import subprocess

    data_dir = tmp_path_factory.mktemp("dashboard-auth")
    port = free_port()
    env = base_env(data_dir, ARCHBENCH_AUTH="true")
    py = [sys.executable, "-m", "cli.main"]
    subprocess.run([*py, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    created = subprocess.run(
        [*py, "keys", "create", "--tenant", "web"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    key = created.stdout.strip().splitlines()[-1]
    svc = Service(url=f"http://127.0.0.1:{port}", env=env, data_dir=data_dir)
    svc.logs = {"up": data_dir / "up.log"}
    cmd = [*py, "up", "--port", str(port), "--data-dir", str(data_dir)]
    svc.procs["up"] = start(cmd, env, svc.logs["up"])
    try:
        wait_http(svc.url, svc.procs["up"], svc.logs["up"], timeout=90)
        yield svc, key
    finally:
        stop(svc.procs["up"], sig=signal.SIGINT)


def test_dashboard_with_auth_on(up_with_auth: tuple[Service, str], browser: Any) -> None:
    """The page asks for a key, keeps it for the tab, and then works end to end."""
    from selenium.webdriver.common.by import By

    svc, key = up_with_auth
    driver = browser
    driver.get(svc.url + "/")
    _wait(
        driver,
        lambda d: "API key" in _text(d, "body"),
        20,
        "the page to load",
    )
    _wait(
        driver,
        lambda d: "needs a valid API key" in _text(d, "body"),
        20,
        "the banner asking for a key (the list answered 401)",
    )

    field = driver.find_element(By.ID, "api-key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button, #key-form [type=submit]").click()
    _wait(driver, lambda d: _text(d, "#key-state") == "key set for this tab", 10, "the key")
    stored = driver.execute_script("return sessionStorage.getItem('archbench.apiKey')")
    assert stored == key

    driver.get(svc.url + "/#/new")
    _paste_and_submit(driver, tiny_spec("dashboard auth", seeds=[0], epochs=1))
    _wait(driver, lambda d: "#/c/" in d.current_url, 20, "the comparison page")
    _wait(
        driver,
        lambda d: _text(d, "#c-status") in ("succeeded", "failed", "cancelled"),
        240,
        "the comparison to finish, followed over the authenticated event stream",
    )
    assert _text(driver, "#c-status") == "succeeded", svc.log("up")[-3000:]
    _wait(driver, lambda d: _text(d, "#report-final") == "(final)", 30, "the final report")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#trials tbody tr")) == 2  # 2 variants
