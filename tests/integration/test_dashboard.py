"""The dashboard in a real browser: Debian's chromium driven by Playwright.

A real `entropy api serve` on PostgreSQL with a real engine beside it (the
small fleet of tests/apiserver.py: bad_check fails on both web hosts, whose
repair does not fix it, so both are flagged). Screenshots of every page are
saved under the test's tmp_path/screenshots for review.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import processes
from apiserver import Api, flagged, small_fleet
from conftest import UNDER_CI

# A real API server and engine on one store, as in test_api.py: the serial phase's.
pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.multiprocess]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright cannot download a browser here


@pytest.fixture
def browser() -> Iterator[object]:
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        missing = "no /usr/bin/chromium: apt-get install chromium (.ci/run does)"
        pytest.fail(missing) if UNDER_CI else pytest.skip(missing)
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture
def small(tmp_path: Path, postgresql_url: str) -> Iterator[tuple[Api, subprocess.Popen]]:
    with small_fleet(tmp_path, postgresql_url) as served:
        yield served


def test_overview_problems_and_a_hosts_page(
    small: tuple[Api, subprocess.Popen], browser: object, tmp_path: Path
) -> None:
    api, _engine = small
    processes.wait_for(lambda: len(flagged(api)) == 2, 60, "the engine to flag both web hosts")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1366, "height": 900})  # type: ignore[attr-defined]

    # Not signed in: the sign-in page; a wrong token is refused, a reader's lets in.
    page.goto(api.url + "/")
    assert page.url == api.url + "/login"
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    assert "That token is not known" in page.inner_text("main")
    page.fill("input[name=token]", api.tokens["viewer"])
    page.click("button[type=submit]")
    page.wait_for_url(api.url + "/")
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # Problems first: the flagged hosts and the critical audits, each named in words.
    tiles = page.inner_text("#counts")
    assert "CRITICAL\n2" in tiles and "FLAGGED\n2" in tiles
    flagged_rows = page.inner_text("h2#flagged + table")
    assert "web-1.test" in flagged_rows and "web-2.test" in flagged_rows
    assert "FLAGGED" in flagged_rows and "1 runs of fix_bad did not fix bad_check" in flagged_rows
    failing = page.inner_text("h2#failing + table")
    assert failing.count("CRITICAL") == 2 and "bad_check" in failing
    assert failing.count(" ago") == 2  # when each last ran (health gives it in microseconds)
    headings = [h.inner_text() for h in page.query_selector_all("main h2")]
    assert headings.index("Flagged hosts") < headings.index("Latest repairs")

    # The host's page shows the results the API gives for it.
    page.click("h2#flagged + table >> text=web-1.test")
    page.wait_for_url(api.url + "/hosts/web-1.test")
    page.screenshot(path=str(shots / "host.png"), full_page=True)
    with api.client("viewer") as http:
        rows = http.get("/v1/audits", params={"host": "web-1.test"}).json()["items"]
    shown = [
        tuple(cell.inner_text() for cell in row.query_selector_all("td")[:2])
        for row in page.query_selector_all("#audits tr:has(td)")
    ]
    assert sorted(shown) == sorted((r["result"]["outcome"].upper(), r["audit_name"]) for r in rows)
    assert shown[0] == ("CRITICAL", "bad_check")  # worst first
    assert "CRITICAL - broken" in page.inner_text("#audits")
    assert "NOT_FIXED" in page.inner_text("main")  # the repair run, verified not fixed

    page.click("#audits >> text=bad_check")
    page.wait_for_url(api.url + "/audits/bad_check")
    assert "every 1h" in page.inner_text("main")
    assert page.inner_text("#hosts").count("CRITICAL\tweb-") == 2
    page.screenshot(path=str(shots / "audit.png"), full_page=True)

    page.click("header >> text=Repairs")
    page.wait_for_url(api.url + "/repairs")
    assert page.inner_text("#states").count("FLAGGED") == 2
    page.screenshot(path=str(shots / "repairs.png"), full_page=True)
    assert sorted(p.name for p in shots.iterdir()) == [
        "audit.png", "host.png", "overview.png", "repairs.png"]  # fmt: skip
    print(f"screenshots: {shots}")
