"""A new user's first minutes, in a real headless Chromium: Swagger UI signs in at the IdP.

Opens the example service's Swagger UI, clicks "Authorize", signs in at the bundled IdP's form,
calls a protected route (200), then a step-up route (401 insufficient_user_authentication).
A screenshot of each step is written to test-output/browser/.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rs_guard.testing import TestIdP, loopback_socket, serve, socket_url

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
TIMEOUT = 20


@pytest.fixture
def rs_guard_idp_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        found = shutil.which("chromium"), shutil.which("chromedriver")
        pytest.skip(f"needs Debian chromium + chromium-driver (found {found}); `make system-deps`")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    # Never let Selenium Manager look for (or download) a driver or browser.
    monkeypatch.setenv("SE_OFFLINE", "true")
    profile = tempfile.mkdtemp(prefix="rs_guard-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--no-proxy-server",
        # Belt and braces: no name resolves, so nothing but loopback IP literals is reachable.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(TIMEOUT)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def api_url(rs_guard_idp_server: TestIdP, example: ModuleType) -> Iterator[str]:
    # The app must know its own URL (its resource identifier) before it is served.
    sock = loopback_socket()
    url = socket_url(sock)
    rs_guard_idp_server.register_client(
        example.SWAGGER_CLIENT_ID,
        redirect_uris=[f"{url}/docs/oauth2-redirect"],
        token_endpoint_auth_method="none",
        scope=" ".join(example.SCOPES),
        client_name="Example items API (Swagger UI)",
    )
    app = example.create_app(issuer=rs_guard_idp_server.issuer, resource=url)
    with serve(app, sock=sock) as served:
        yield served


def test_swagger_ui_signs_in_at_the_idp_and_calls_the_api(
    driver: Any, api_url: str, rs_guard_idp_server: TestIdP
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    SHOTS.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(driver, TIMEOUT)

    def shot(name: str) -> None:
        driver.save_screenshot(str(SHOTS / f"{name}.png"))

    def css(selector: str, root: Any = None) -> Any:
        return (root or driver).find_element(By.CSS_SELECTOR, selector)

    # 1. Swagger UI loads (its assets come from the service itself).
    driver.get(f"{api_url}/docs")
    authorize = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.authorize")))
    payments = (By.CSS_SELECTOR, "#operations-default-pay_payments_post")
    wait.until(ec.presence_of_element_located(payments))
    shot("01-swagger-ui")

    # 2. "Authorize" opens the dialog with the client id and scopes from swagger_ui_init_oauth.
    authorize.click()
    dialog = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))
    assert "authorizationCode with PKCE" in dialog.text
    assert f"{rs_guard_idp_server.issuer}/authorize" in dialog.text
    client_id = css("input[data-name=clientId]", dialog)
    assert client_id.get_attribute("value") == "swagger-ui"
    shot("02-authorize-dialog")
    main = driver.current_window_handle
    css(".auth-btn-wrapper .btn.authorize", dialog).click()

    # 3. The IdP's sign-in form opens in a popup: it names the client and the scopes.
    wait.until(lambda d: len(d.window_handles) == 2)
    popup = next(h for h in driver.window_handles if h != main)
    driver.switch_to.window(popup)
    user = wait.until(ec.visibility_of_element_located((By.ID, "login_user")))
    assert driver.current_url.startswith(f"{rs_guard_idp_server.issuer}/authorize")
    page = css("main").text
    assert "Example items API (Swagger UI)" in page
    for scope in ("items:read", "items:write", "payments:write"):
        assert scope in page
    user.clear()
    user.send_keys("alice")
    Select(driver.find_element(By.ID, "login_acr")).select_by_value("pwd")
    shot("03-idp-sign-in")
    css("button[name=decision][value=approve]").click()

    # 4. Back in Swagger UI: the redirect page hands the code over and closes; the token request
    #    goes cross-origin to the IdP (CORS) and the dialog shows the client as authorized.
    wait.until(lambda d: len(d.window_handles) == 1)
    driver.switch_to.window(main)
    wait.until(
        lambda d: any(
            b.text.strip() == "Logout"
            for b in d.find_elements(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper button")
        )
    )
    shot("04-authorized")
    css(".modal-ux button.close-modal").click()
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))

    def execute(operation_id: str) -> tuple[str, str]:
        block = css(f"#{operation_id}")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", block)
        css(".opblock-summary-control", block).click()
        button = wait.until(lambda d: css(f"#{operation_id} button.execute"))
        button.click()
        status = wait.until(
            lambda d: css(f"#{operation_id} .live-responses-table tbody .response-col_status")
        )
        body = css(f"#{operation_id} .live-responses-table tbody .response-col_description")
        # Show the server response (status, body, headers) in the screenshot.
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", body)
        return status.text.strip(), body.text

    # 5. A protected route with the granted scope: 200.
    status, body = execute("operations-default-list_items_items_get")
    shot("05-items-200")
    assert status.startswith("200"), body
    assert "teapot" in body

    # 6. A step-up route after a password sign-in: RFC 9470 challenge.
    status, body = execute("operations-default-pay_payments_post")
    shot("06-payments-step-up-401")
    assert status.startswith("401"), body
    assert "insufficient_user_authentication" in body
    assert 'acr_values="mf phr"' in body  # the WWW-Authenticate header, shown by Swagger UI
