"""The page in a real headless Chromium (Debian's ``chromium``, driven by Playwright), against a
real ``matrixcalculus serve``: a person's use, typed and clicked, read back from the screen.

One server and one browser for the module; each test has its own page. Where Chromium is not
installed the tests are skipped, except in CI (``CI`` set: ``.ci/run`` installs it), where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from matrixcalculus.web.examples import EXAMPLES, Example
from tests.webserver import running_server

if not os.environ.get("CI"):
    pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("CI"):
        pytest.fail("chromium is required when CI is set (.ci/run installs it with apt-get)", pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server("--workers", "2") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def problems() -> list[str]:
    """Content-Security-Policy violations and script errors the page reported."""
    return []


@pytest.fixture
def page(browser: Browser, server: str, problems: list[str]) -> Iterator[Page]:
    context = browser.new_context(base_url=server, viewport={"width": 1200, "height": 1400})
    p = context.new_page()
    p.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    p.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    yield p
    context.close()


def _open(page: Page, query: str = "") -> None:
    page.goto("/" + query)
    page.wait_for_selector("body[data-ready=true]")


def _squash(text: str) -> str:
    return "".join(text.split())


def _wait_results(page: Page, expected: list[str], timeout: float = 15_000) -> None:
    """Until the page shows exactly these results (``df/dW = ...``, whitespace aside)."""
    wanted = [_squash(t) for t in expected]
    try:
        page.wait_for_function(
            """(wanted) => {
                const shown = [...document.querySelectorAll('#results .result-text')]
                    .map((e) => e.textContent.replace(/\\s+/g, ''));
                return document.body.dataset.busy === undefined && shown.length === wanted.length &&
                    shown.every((s, k) => s === wanted[k]);
            }""",
            arg=wanted,
            timeout=timeout,
        )
    except Exception:
        shown = page.locator("#results .result-text").all_text_contents()
        raise AssertionError(f"the page shows {shown}, expected {expected}") from None


def _type_example(page: Page, example: Example) -> None:
    """Type the expression, declare its types in the table, pick wrt and layout, as a person does."""
    box = page.locator("#expression")
    box.fill("")
    box.press_sequentially(example.expression, delay=5)
    names = _variable_names(page, example)
    for name, kind in example.types.items():
        page.locator(f"select[data-name='{name}']").select_option(kind)
        page.wait_for_function("(n) => [...document.querySelectorAll('.declared')].length > 0", arg=name)
    stack = [w for w in example.wrt if w.startswith("[")]
    for name in names:
        checkbox = page.locator(f"#wrt-{name}")
        if checkbox.is_checked() != (name in example.wrt):
            checkbox.click()
    page.locator("#wrt-stack").fill(stack[0] if stack else "")
    page.locator("#wrt-stack").dispatch_event("change")
    page.locator("#layout").select_option(example.layout)


def _variable_names(page: Page, example: Example) -> list[str]:
    page.wait_for_function(
        "(text) => document.querySelector('#typeset-input math') !== null && "
        "document.querySelector('#expression').value === text",
        arg=example.expression,
    )
    page.wait_for_timeout(300)  # the table is rebuilt from the last parse
    return [n.strip() for n in page.locator("#variables tbody tr td:first-child").all_text_contents()]


def test_each_tutorial_example_typed_in_shows_the_typeset_derivative_and_its_check(
    page: Page, problems: list[str]
) -> None:
    _open(page)
    page.locator("#size").select_option("2")  # the explicit case at size 2: the smallest that shows structure
    for example in EXAMPLES:
        _type_example(page, example)
        _wait_results(page, [f"df/d{w} = {e}" for w, e in zip(example.wrt, example.expected, strict=True)])
        results = page.locator("#results article")
        for k in range(results.count()):
            article = results.nth(k)
            # Typeset: a MathML element, in MathML's namespace, rendered with a real size.
            namespace = article.locator("math").evaluate("m => m.namespaceURI")
            assert namespace == "http://www.w3.org/1998/Math/MathML"
            assert article.locator("math").bounding_box()["height"] > 10
            assert "(ok)" in article.locator(".ok").text_content()
            assert article.locator(".latex").text_content()
            assert article.locator(".index").text_content()
        assert "def derivatives" in page.locator("#source").text_content()
        # The explanation: collapsible steps, the first ones open, with typeset formulas.
        page.wait_for_function(
            """(names) => { const q = document.querySelector('#question').textContent;
                return !document.querySelector('#explanation').hidden && names.every((n) => q.includes(n)) &&
                    document.querySelectorAll('#steps details').length >= 3 &&
                    document.querySelector('#steps details[open] math') !== null; }""",
            arg=list(example.wrt),
            timeout=20_000,
        )
        # The explicit small case typeset, and its picture loaded, for each variable.
        page.wait_for_function(
            """(n) => { const figures = document.querySelectorAll('#explicit figure');
                return figures.length === n && [...figures].every((f) =>
                    f.querySelector('math') !== null && f.querySelector('img.picture')?.naturalWidth > 0); }""",
            arg=len(example.wrt),
            timeout=20_000,
        )
    assert problems == []


def test_the_examples_menu_loads_an_example(page: Page) -> None:
    _open(page)
    options = page.locator("#examples option")
    assert options.count() == len(EXAMPLES) + 1
    k = next(i for i, e in enumerate(EXAMPLES) if e.expression == "0.5*norm2(W*x - t)^2")
    page.locator("#examples").select_option(str(k))
    _wait_results(page, ["df/dW = (W*x - t)*x'"])
    assert page.locator("#expression").input_value() == "0.5*norm2(W*x - t)^2"


def test_a_bad_expression_shows_its_error_at_the_column_while_typing(page: Page) -> None:
    _open(page)
    page.locator("#expression").fill("")
    page.locator("#expression").press_sequentially("x + sine(x)", delay=10)
    page.wait_for_selector("#parse-error:not([hidden])")
    assert page.locator("#error-caret").text_content() == "x + sine(x)\n    ^"  # the caret under column 5
    assert "'sine'" in page.locator("#error-message").text_content()
    assert page.locator("#expression").get_attribute("aria-invalid") == "true"
    assert page.locator("#results article").count() == 0
    # Fixing it clears the error and shows the derivative.
    page.locator("#expression").fill("sum(sin(x))")
    page.wait_for_selector("#parse-error", state="hidden")
    _wait_results(page, ["df/dx = cos(x)"])


@pytest.mark.parametrize(
    "text",
    [
        "<script>window.hacked = 1</script>",
        '"><img src=x onerror="window.hacked=1">',
        "x' * '<math><mi>y</mi></math>'",
    ],
)
def test_markup_typed_in_renders_as_text(page: Page, text: str) -> None:
    _open(page)
    page.locator("#expression").fill(text)
    page.wait_for_selector("#parse-error:not([hidden])")
    assert page.locator("#error-caret").text_content().startswith(text)
    assert page.evaluate("window.hacked") is None
    assert page.evaluate("document.scripts.length") == 1  # app.js only
    assert page.locator("img").count() == 0
    assert page.locator("#parse-error math").count() == 0


def test_markup_in_a_shared_link_renders_as_text(page: Page) -> None:
    _open(page, "?f=%3Cimg%20src%3Dx%20onerror%3Dwindow.hacked%3D1%3E&type=%3Cb%3Ex%3C%2Fb%3E:vector&wrt=%22%3E")
    page.wait_for_selector("#parse-error:not([hidden])")
    assert page.locator("#expression").input_value() == "<img src=x onerror=window.hacked=1>"
    assert page.evaluate("window.hacked") is None and page.locator("img").count() == 0
    assert page.locator("b").count() == 0


def test_mathml_looking_names_are_typeset_as_names(page: Page) -> None:
    _open(page, "?f=mtext%27*math*mi%20%2B%20script&wrt=mtext")
    # mtext, math, mi are vectors by their names (h-z): d(mtext'*math*mi)/dmtext = mi*math'.
    _wait_results(page, ["df/dmtext = mi*math'"])
    assert page.evaluate("document.scripts.length") == 1
    typeset = page.locator("#results article math").text_content()
    assert "math" in typeset.replace("\u2061", "") and "mi" in typeset


def test_the_share_link_reproduces_the_state(page: Page, browser: Browser, server: str) -> None:
    _open(page)
    page.locator("#expression").fill("W*x + b")
    page.wait_for_selector("select[data-name='b']")
    page.locator("select[data-name='b']").select_option("vector")
    page.wait_for_selector(".declared")
    # A shape typed into the table: W is 3 x 4, so x has length 4 and b length 3.
    page.locator("input[data-name='W']").fill("3x4")
    page.locator("input[data-name='W']").press("Enter")
    page.wait_for_function("() => document.querySelector(\"input[data-name='x']\")?.value === '4'")
    assert page.locator("input[data-name='b']").input_value() == "3"
    page.locator("#wrt-W").click()  # x stays chosen from the first expression; now W and x
    page.locator("#layout").select_option("numerator")
    page.locator("#backend").select_option("torch")
    # Numerator layout: f's axis, then W's axes reversed: entry [i,j,k] is d(Wx + b)_i/dW_kj =
    # delta(i,k)*x[j] (the printer lists the axes, -> [i,j,k], as reading it would order them otherwise).
    _wait_results(page, ["df/dW = delta(i,k)*x[j] -> [i,j,k]", "df/dx = W"])
    page.wait_for_function("() => document.querySelector('#source').textContent.includes('import torch')")
    link = page.evaluate("location.href")
    assert "layout=numerator" in link and "backend=torch" in link

    other = browser.new_context(base_url=server).new_page()
    other.goto(link)
    other.wait_for_selector("body[data-ready=true]")
    _wait_results(other, ["df/dW = delta(i,k)*x[j] -> [i,j,k]", "df/dx = W"])
    assert other.locator("#expression").input_value() == "W*x + b"
    assert other.locator("select[data-name='b']").input_value() == "vector"
    assert other.locator("input[data-name='W']").input_value() == "3 x 4"
    assert other.locator("#layout").input_value() == "numerator"
    assert other.locator("#backend").input_value() == "torch"
    other.wait_for_function("() => document.querySelector('#source').textContent.includes('import torch')")
    other.context.close()


def test_keyboard_only(page: Page) -> None:
    _open(page)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "examples"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "expression"
    page.keyboard.press("Control+A")
    page.keyboard.type("y'*A*x")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#wrt-y') !== null && document.querySelector('#wrt-A') !== null"
    )
    _wait_results(page, ["df/dx = A'*y"])  # x stays chosen: it is still a variable
    # Tab to the checkboxes (y, A, x): A on, x off, with the space bar.
    for target, results in (("wrt-A", ["df/dA = y*x'", "df/dx = A'*y"]), ("wrt-x", ["df/dA = y*x'"])):
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == target:
                break
        assert page.evaluate("document.activeElement.id") == target
        page.keyboard.press("Space")
        _wait_results(page, results)
    # The layout by keyboard, then the copy-link button with Enter.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "layout":
            break
    page.keyboard.press("ArrowDown")  # numerator: d(y'Ax)/dA is x*y' there
    _wait_results(page, ["df/dA = x*y'"])
    # A closed step of the explanation opens from the keyboard (Tab to its summary, Enter).
    page.wait_for_selector("#explanation:not([hidden]) #steps details:not([open])")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName === 'SUMMARY' && !document.activeElement.parentElement.open"):
            break
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.parentElement.open") is True


def test_copy_and_download_the_code(browser: Browser, server: str) -> None:
    context = browser.new_context(base_url=server, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page = context.new_page()
    _open(page, "?f=x%27*A*x&wrt=x")
    page.wait_for_function("() => document.querySelector('#source').textContent.includes('def derivatives')")
    source = page.locator("#source").text_content()
    page.locator("#copy-code").click()
    page.wait_for_function("() => document.querySelector('#code-status').textContent === 'copied'")
    assert page.evaluate("navigator.clipboard.readText()") == source
    with page.expect_download() as download:
        page.locator("#download-code").click()
    assert download.value.suggested_filename == "derivatives_numpy.py"
    with open(download.value.path()) as f:
        assert f.read() == source
    page.locator("#results button").first.click()  # copy the plain text of the result
    assert page.evaluate("navigator.clipboard.readText()") == "(A + A')*x"
    context.close()


@pytest.mark.parametrize(("scheme", "dark"), [("light", False), ("dark", True)])
def test_the_theme_follows_the_system(browser: Browser, server: str, scheme: str, dark: bool) -> None:
    context = browser.new_context(base_url=server, color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    _open(page)
    rgb = page.evaluate("getComputedStyle(document.body).backgroundColor")
    channels = [int(c) for c in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3]]
    assert (sum(channels) / 3 < 80) == dark, rgb
    context.close()
