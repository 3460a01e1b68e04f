"""The queue's web page: in a real browser, and its sign-in through the API's own rules.

The browser is Debian's Chromium (/usr/bin/chromium, which ``make test`` installs as root) driven by
Playwright, which never downloads a browser of its own here.  Without either, the browser tests
skip, and fail when CI is set.  Each browser test saves a screenshot of the pages it shows in its
tmp_path, or in $WEB_SCREENSHOTS_DIR when set (``WEB_SCREENSHOTS_DIR=docs`` renews docs/web-*.png).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import SESSION_COOKIE
from api.web import WebOptions
from conductor.resources import Allocation, Resources
from conductor.service import JobService
from tests.conftest import _missing
from tests.helpers import api_answers, free_port, node, spec, wait_for

CHROMIUM = "/usr/bin/chromium"
#: The flags Chromium needs as root in a container; Playwright adds --headless and a fresh profile.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Milliseconds the browser waits for the page to show something.
SHOWN_MS = 30_000
SCRIPT = "#!/bin/bash\necho hello from the web page\nsleep 6\necho bye\n"


def _body(**job: object) -> dict:
    return {"job": {"name": "web-demo", "current_working_directory": "/tmp", **job}, "script": SCRIPT}


def _cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={token}"}


# -- the session cookie and the pages' answers, without a browser (both backends) --------------------


@pytest.fixture
def secured(settings_factory, backend) -> Iterator[dict]:
    """AUTH=token with alice, bob and root (admin), one held job each for alice and bob; no scheduler."""
    settings = settings_factory(backend, auth="token")
    service = JobService.from_settings(settings)
    service.repository.replace_nodes([node("n1", 32, 65536, 0, {}, ray_node_id="ray-n1")])
    store = service.token_store()
    tokens = {"alice": store.create("alice"), "bob": store.create("bob"), "root": store.create("root", admin=True)}
    with TestClient(create_app(settings, service=service)) as client:
        ids = {user: client.post("/api/jobs/submit", json=_body(hold=True),
                                 headers={"Authorization": f"Bearer {tokens[user]}"}).json()["job_id"]
               for user in ("alice", "bob")}
        yield {"client": client, "tokens": tokens, "ids": ids}
    service.close()


def test_without_a_session_cookie_the_api_is_401_and_the_pages_ask_for_a_token(secured: dict) -> None:
    client, alices = secured["client"], secured["ids"]["alice"]
    for path in ("/api/jobs", f"/api/jobs/{alices}", f"/api/jobs/{alices}/output/follow"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=_cookie("cdt_wrong")).status_code == 401, path
    for path in ("/", "/web/nodes", f"/web/jobs/{alices}", f"/web/jobs/{alices}/ray"):
        page = client.get(path)
        assert page.status_code == 401, path
        assert 'name="token"' in page.text and f'value="{path}"' in page.text  # signed in, it comes back here


def test_the_cookie_shows_only_the_users_own_jobs_and_another_users_job_is_404(secured: dict) -> None:
    client, tokens, ids = secured["client"], secured["tokens"], secured["ids"]
    alice = _cookie(tokens["alice"])
    assert [job["job_id"] for job in client.get("/api/jobs?user=bob", headers=alice).json()["jobs"]] == [ids["alice"]]
    for path in (f"/api/jobs/{ids['bob']}", f"/api/jobs/{ids['bob']}/output/follow", f"/web/jobs/{ids['bob']}",
                 f"/web/jobs/{ids['bob']}/ray"):
        assert client.get(path, headers=alice).status_code == 404, path
    page = client.get(f"/web/jobs/{ids['alice']}", headers=alice)
    assert page.status_code == 200 and f'data-job-id="{ids["alice"]}"' in page.text
    assert "Signed in as <b>alice</b>" in client.get("/", headers=alice).text
    everyone = client.get("/api/jobs", headers=_cookie(tokens["root"])).json()["jobs"]
    assert sorted(job["job_id"] for job in everyone) == sorted(ids.values())


def test_the_cookie_never_changes_anything(secured: dict) -> None:
    """The page is read-only: a cookie authenticates reads only, so no other site can make it act."""
    client, alice, alices = secured["client"], _cookie(secured["tokens"]["alice"]), secured["ids"]["alice"]
    assert client.post("/api/jobs/submit", json=_body(), headers=alice).status_code == 401
    assert client.post(f"/api/jobs/{alices}/cancel", headers=alice).status_code == 401
    assert client.get(f"/api/jobs/{alices}", headers=alice).json()["state"] == "PENDING"


def test_signing_in_sets_a_strict_http_only_cookie_and_signing_out_clears_it(secured: dict) -> None:
    client, token = secured["client"], secured["tokens"]["alice"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = client.post("/web/login", content="token=cdt_wrong&next=/", headers=form)
    assert refused.status_code == 401 and "not a valid token" in refused.text and "set-cookie" not in refused.headers
    elsewhere = client.post("/web/login", content=f"token={token}", headers={**form, "Origin": "https://evil.example"})
    assert elsewhere.status_code == 403 and "set-cookie" not in elsewhere.headers
    signed_in = client.post("/web/login", content=f"token={token}&next=//evil.example/x", headers=form,
                            follow_redirects=False)
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/")  # no redirect off the site
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={token};")
    assert {"httponly", "samesite=strict", "path=/"} <= {part.strip().lower() for part in cookie.split(";")}
    signed_out = client.post("/web/logout", follow_redirects=False)
    assert signed_out.status_code == 303 and 'max-age=0' in signed_out.headers["set-cookie"].lower()


def test_with_auth_none_every_page_answers_and_there_is_no_sign_in(client: TestClient) -> None:
    for path in ("/", "/web/nodes"):
        page = client.get(path)
        assert page.status_code == 200 and "AUTH=none" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/web/login", follow_redirects=False).headers["location"] == "/"
    assert client.get("/web/jobs/99").status_code == 404
    assert client.get("/web/static/queue.js").headers["content-type"].startswith(("text/javascript",
                                                                                "application/javascript"))


def test_nodes_and_partitions_report_allocated_gpus(settings) -> None:
    """The nodes page shows GPUs allocated beside the total; the API reports both."""
    service = JobService.from_settings(settings)
    gpu_node = node("g1", 8, 16384, 2, {"conductor.io/partition": "gpu"}, ray_node_id="ray-g1")
    service.repository.replace_nodes([gpu_node])
    job = service.submit(spec("true", partition="gpu", gpus_per_node=1))
    service.repository.start_jobs([Allocation(job.id, (gpu_node,), Resources(1, 1024, 1))])
    with TestClient(create_app(settings, service=service)) as client:
        found = client.get("/api/nodes").json()["nodes"][0]
        assert (found["gpus"], found["gpus_allocated"]) == (2, 1)
        partition = client.get("/api/partitions").json()["partitions"][0]
        assert (partition["name"], partition["gpus"], partition["gpus_allocated"]) == ("gpu", 2, 1)
    service.close()


# -- in the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium, Debian's; a fresh profile for each context the tests open."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _missing("Playwright (pip install -e '.[test]')", exc)
    if not os.access(CHROMIUM, os.X_OK):
        _missing("Chromium", FileNotFoundError(f"{CHROMIUM} (make test installs Debian's chromium as root)"))
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], str]]:
    """Serve an app with uvicorn in a thread of the test process: its URL; stopped after the test."""
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: api_answers(url), 30)
        return url

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("WEB_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _open(context: object, url: str, errors: list) -> object:
    """A new page of ``context`` at ``url``; what its scripts throw goes to ``errors``."""
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    page.goto(url)
    return page


def _kept(page: object) -> None:
    """Mark the page's window: the mark is gone if the page is ever loaded again."""
    page.evaluate("window.__conductorKept = true")


def _never_reloaded(page: object) -> bool:
    return page.evaluate("window.__conductorKept === true")


@pytest.mark.slow
@pytest.mark.ray
def test_a_job_appears_runs_and_completes_on_the_pages_without_a_reload(
        browser, serve, settings_factory, scheduler_factory, ray_local_cluster, screenshots, tmp_path) -> None:
    from playwright.sync_api import expect
    from ray.util.state import list_tasks

    settings = settings_factory("sqlite-embedded")
    service = JobService.from_settings(settings)  # (migrates the schema)
    scheduler_factory(settings)
    dashboard = ray_local_cluster.head_node.webui_url
    dashboard = dashboard if dashboard.startswith("http") else f"http://{dashboard}"
    app = create_app(settings, service=service, dashboard_url=dashboard)
    app.state.web = WebOptions(dashboard_url=dashboard, refresh_s=0.5)
    url = serve(app)
    context, errors = browser.new_context(viewport={"width": 1500, "height": 820}), []
    queue, nodes = _open(context, f"{url}/", errors), _open(context, f"{url}/web/nodes", errors)
    node_cpus = nodes.locator('tr[data-node="testnode"] td.cpus')
    expect(node_cpus).to_have_text("0 / 32", timeout=SHOWN_MS)
    for page in (queue, nodes):
        _kept(page)

    held = httpx.post(f"{url}/api/jobs/submit", json=_body(name="waits", hold=True)).json()["job_id"]
    job_id = httpx.post(f"{url}/api/jobs/submit", json=_body(
        cpus_per_task=2, memory_per_node="1G", time_limit="5", current_working_directory=str(tmp_path))).json()["job_id"]
    row = queue.locator(f'tr[data-job-id="{job_id}"]')
    expect(row).to_be_visible(timeout=SHOWN_MS)
    expect(row.locator("td.state")).to_have_text("RUNNING", timeout=SHOWN_MS)
    expect(queue.locator(f'tr[data-job-id="{held}"] td.reason')).to_have_text("JobHeldUser")
    job = _open(context, f"{url}/web/jobs/{job_id}", errors)
    _kept(job)
    expect(job.locator("#output")).to_contain_text("hello from the web page", timeout=SHOWN_MS)
    expect(job.locator("#state")).to_have_text("RUNNING")
    expect(node_cpus).to_have_text("2 / 32", timeout=SHOWN_MS)
    expect(nodes.locator('tr[data-node="testnode"] td.memory')).to_have_text("1G / 64G")
    queue.screenshot(path=str(screenshots / "web-queue.png"))
    nodes.screenshot(path=str(screenshots / "web-nodes.png"))

    expect(row.locator("td.state")).to_have_text("COMPLETED", timeout=SHOWN_MS)
    expect(job.locator("#state")).to_have_text("COMPLETED", timeout=SHOWN_MS)
    expect(job.locator("#output")).to_have_text("hello from the web page\nbye\n", timeout=SHOWN_MS)
    expect(job.locator("#follow")).to_have_text("ended: COMPLETED, exit code 0:0", timeout=SHOWN_MS)
    accounting = {name: job.locator(f'tr[data-field="{name}"] td') for name in ("Exit code", "Elapsed", "MaxRSS")}
    expect(accounting["Exit code"]).to_have_text("0:0")
    expect(accounting["Elapsed"]).to_have_text(re.compile(r"00:00:(0[6-9]|1\d)"))
    expect(accounting["MaxRSS"]).to_have_text(re.compile(r"^\d+[MG]$"))
    expect(job.locator('tr[data-field="CPU time"] td')).to_have_text(re.compile(r"^00:00:\d\d$"))
    expect(node_cpus).to_have_text("0 / 32", timeout=SHOWN_MS)
    job.screenshot(path=str(screenshots / "web-job.png"), full_page=True)

    _filters_narrow_the_queue(queue, job_id, held)
    assert all(_never_reloaded(page) for page in (queue, nodes, job))
    assert errors == []
    (task,) = list_tasks(address=dashboard, filters=[("name", "=", f"{job_id}:web-demo")])
    link = httpx.get(f"{url}{job.locator('#ray-link').get_attribute('href')}", follow_redirects=False)
    assert (link.status_code, link.headers["location"]) == (
        307, f"{dashboard}/#/jobs/{task.job_id}/tasks/{task.task_id}")
    context.close()
    service.close()


def _filters_narrow_the_queue(queue: object, job_id: int, held: int) -> None:
    from playwright.sync_api import expect

    done, waiting = queue.locator(f'tr[data-job-id="{job_id}"]'), queue.locator(f'tr[data-job-id="{held}"]')
    queue.select_option('select[name="state"]', "COMPLETED")
    expect(waiting).to_have_count(0, timeout=SHOWN_MS)
    expect(done).to_be_visible()
    expect(queue).to_have_url(re.compile(r"\?state=COMPLETED$"))  # the filters live in the address
    queue.fill('input[name="user"]', "nobody")
    expect(done).to_have_count(0, timeout=SHOWN_MS)
    expect(queue.locator("#empty")).to_be_visible()
    queue.fill('input[name="user"]', "")
    queue.fill('input[name="partition"]', "default")
    queue.select_option('select[name="state"]', "")
    expect(done).to_be_visible(timeout=SHOWN_MS)
    expect(waiting).to_be_visible(timeout=SHOWN_MS)
    queue.fill('input[name="partition"]', "elsewhere")
    expect(done).to_have_count(0, timeout=SHOWN_MS)


def test_with_tokens_alice_signs_in_and_sees_her_job_not_bobs(browser, serve, settings_factory, screenshots) -> None:
    from playwright.sync_api import expect

    settings = settings_factory("sqlite-embedded", auth="token")
    service = JobService.from_settings(settings)
    store = service.token_store()
    tokens = {"alice": store.create("alice"), "bob": store.create("bob"), "root": store.create("root", admin=True)}
    url = serve(create_app(settings, service=service))
    ids = {user: httpx.post(f"{url}/api/jobs/submit", json=_body(name=f"{user}-job", hold=True),
                            headers={"Authorization": f"Bearer {tokens[user]}"}).json()["job_id"]
           for user in ("alice", "bob")}
    errors: list = []
    page = browser.new_context().new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    assert page.goto(f"{url}/").status == 401
    page.fill("#token", "cdt_not-a-token")
    page.click("#sign-in")
    expect(page.locator("#error")).to_have_text("That is not a valid token.")
    page.fill("#token", tokens["alice"])
    page.click("#sign-in")
    expect(page.locator(f'tr[data-job-id="{ids["alice"]}"]')).to_be_visible(timeout=SHOWN_MS)
    expect(page.locator(f'tr[data-job-id="{ids["bob"]}"]')).to_have_count(0)
    expect(page.locator('input[name="user"]')).to_be_disabled()
    assert page.evaluate("document.cookie") == ""  # HttpOnly: the page's scripts never see the token
    (cookie,) = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (SESSION_COOKIE, True, "Strict")

    assert page.goto(f"{url}/web/jobs/{ids['bob']}").status == 404
    assert page.goto(f"{url}/web/jobs/{ids['alice']}").status == 200
    expect(page.locator("#state")).to_have_text("PENDING", timeout=SHOWN_MS)
    follow = "async (path) => { const c = new AbortController(); const r = await fetch(path, {signal: c.signal});" \
             " c.abort(); return r.status; }"
    assert page.evaluate(follow, f"/api/jobs/{ids['bob']}/output/follow") == 404
    assert page.evaluate(follow, f"/api/jobs/{ids['alice']}/output/follow") == 200
    page.click("#logout")
    expect(page.locator("#token")).to_be_visible()
    assert page.evaluate("fetch('/api/jobs').then(r => r.status)") == 401

    admin = _open(browser.new_context(), f"{url}/", errors)
    admin.fill("#token", tokens["root"])
    admin.click("#sign-in")
    for job_id in ids.values():
        expect(admin.locator(f'tr[data-job-id="{job_id}"]')).to_be_visible(timeout=SHOWN_MS)
    assert errors == []
    service.close()
