"""The page's JSON API and its safety, against a real ``matrixcalculus serve`` on loopback.

One server for the module (two workers, a 3-second time limit so the runaway case is quick).
The expected derivatives are the tutorials' (``matrixcalculus.web.examples``, written from
them); the safety cases state what a server must refuse and how.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from importlib import resources

import httpx
import numpy as np
import pytest

from matrixcalculus.web.examples import EXAMPLES
from matrixcalculus.web.mathml import ALLOWED_ELEMENTS, mathml
from matrixcalculus.web.server import is_loopback
from matrixcalculus.web.service import WebLimits, answer, validate
from tests.webserver import free_port, running_server, stop

# A product of 40 factors: its third derivative runs for minutes (measured: over 200 s).
RUNAWAY = "*".join(f"sin(a{k}*x)" for k in range(40))


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server("--workers", "2", "--time-limit", "3") as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def _same(a: str, b: str) -> bool:
    return a.replace(" ", "") == b.replace(" ", "")


def _math_tags(markup: str) -> set[str]:
    return {e.tag.split("}")[-1] for e in ET.fromstring(markup).iter()}


# ------------------------------------------------------------------ the answers


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.expression + " by " + ",".join(e.wrt) for e in EXAMPLES])
def test_each_tutorial_example_gets_the_tutorials_derivative_typeset_and_checked(client: httpx.Client, example) -> None:
    body = {"expression": example.expression, "wrt": list(example.wrt), "types": example.types,
            "layout": example.layout, "check": True}  # fmt: skip
    r = client.post("/api/derivative", json=body)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [res["wrt"] for res in results] == list(example.wrt)
    for res, expected in zip(results, example.expected, strict=True):
        assert _same(res["text"], expected), (res["text"], expected)
        assert res["mathml"].startswith('<math xmlns="http://www.w3.org/1998/Math/MathML"')
        assert _math_tags(res["mathml"]) <= ALLOWED_ELEMENTS
        assert res["check"]["ok"], res["check"]["text"]


def test_the_variables_table_has_inferred_kinds_and_declarations_change_them(client: httpx.Client) -> None:
    r = client.post("/api/parse", json={"expression": "W*x + b"})
    assert r.status_code == 200
    table = {v["name"]: (v["kind"], v["shape"]) for v in r.json()["expression"]["variables"]}
    # W*x + b: W an m x n matrix, x of length n, b a scalar by its name (a notice says so).
    assert table == {"W": ("matrix", "m x n"), "x": ("vector", "n"), "b": ("scalar", "")}
    assert any("b is a scalar" in n for n in r.json()["expression"]["notices"])
    r = client.post("/api/parse", json={"expression": "W*x + b", "types": {"b": "vector", "W": "3x4"}})
    table = {v["name"]: (v["kind"], v["shape"]) for v in r.json()["expression"]["variables"]}
    assert table == {"W": ("matrix", "3 x 4"), "x": ("vector", "4"), "b": ("vector", "3")}
    r = client.post("/api/parse", json={"expression": "x'*S*x", "types": {"S": "symmetric matrix"}})
    assert r.json()["expression"]["variables"][1]["kind"] == "symmetric matrix"


def test_order_layout_and_several_wrt(client: httpx.Client) -> None:
    r = client.post("/api/derivative", json={"expression": "x'*A*x", "wrt": ["x"], "order": 2, "check": True})
    assert r.status_code == 200
    (hessian,) = r.json()["results"]
    assert _same(hessian["text"], "A + A'") and hessian["check"]["ok"]
    # The numerator layout: the gradient of w'*x is the row x' (1 x n).
    r = client.post("/api/derivative", json={"expression": "w'*x", "wrt": "w", "layout": "numerator"})
    assert _same(r.json()["results"][0]["text"], "x'")
    r = client.post("/api/derivative", json={"expression": "A*x", "wrt": ["x", "A"]})
    texts = [res["text"] for res in r.json()["results"]]
    assert _same(texts[0], "A") and _same(texts[1], "delta(i,j)*x[k]")
    assert r.json()["results"][1]["shape"] == "m x m x n"


def test_generated_code_computes_the_gradient(client: httpx.Client) -> None:
    r = client.post("/api/compile", json={"expression": "x'*A*x", "wrt": ["x"], "backend": "numpy"})
    assert r.status_code == 200
    source = r.json()["source"]
    assert r.json()["filename"].endswith(".py") and "def derivatives" in source
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)  # our own generated code, not user text
    rng = np.random.default_rng(0)
    x, A = rng.standard_normal(4), rng.standard_normal((4, 4))
    value, grad = namespace["derivatives"](x, A)
    np.testing.assert_allclose(value, x @ A @ x)
    np.testing.assert_allclose(grad, (A + A.T) @ x)  # d/dx x'Ax = (A + A')x
    for backend, module in (("torch", "import torch"), ("jax", "import jax")):
        r = client.post("/api/compile", json={"expression": "x'*A*x", "wrt": ["x"], "backend": backend, "order": 2})
        assert r.status_code == 200 and module in r.json()["source"]


def test_the_explicit_small_case_and_its_picture(client: httpx.Client) -> None:
    # x .* z by x at n = 3: the diagonal Jacobian diag(z1, z2, z3) (the tutorials' element-wise case).
    r = client.post("/api/explicit", json={"expression": "x .* z", "wrt": ["x"], "size": 3})
    assert r.status_code == 200, r.text
    (item,) = r.json()["results"]
    assert _same(item["text"].replace("\n", ""), "[z1, 0, 0; 0, z2, 0; 0, 0, z3]")
    assert item["shape"] == "3 x 3" and item["sizes"] == {"n": 3}
    assert _math_tags(item["mathml"]) <= ALLOWED_ELEMENTS and "mtable" in _math_tags(item["mathml"])
    svg = base64.b64decode(item["picture"]).decode()
    assert "<svg" in svg and "<script" not in svg
    # d(A*x)/dA at m = n = 2: slice i holds x' in row i and zeros elsewhere (the m x m x n tensor).
    r = client.post("/api/explicit", json={"expression": "A*x", "wrt": ["A"], "size": 2, "picture": False})
    (item,) = r.json()["results"]
    assert _same(item["text"].replace("\n", ""), "[1, :, :] =[x1, x2; 0, 0][2, :, :] =[0, 0; x1, x2]")
    assert "picture" not in item
    # Sizes are capped: 7 is over max_size.
    r = client.post("/api/explicit", json={"expression": "x .* z", "wrt": ["x"], "size": 7})
    assert r.status_code == 422 and r.json()["error"]["limit"] == "max_size"


def test_the_explanation_of_the_neuron_goes_through_u(client: httpx.Client) -> None:
    # The tutorials' neuron max(0, w'x + b): name u = w'x + b, then the chain rule df/dw = df/du du/dw.
    r = client.post("/api/explain", json={"expression": "max(0, w'*x + b)", "wrt": ["w"]})
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    titles = [s["title"] for s in steps]
    assert titles[0] == "The question and its shapes" and "The chain rule" in titles and "A numeric check" in titles
    assert any("u = w'*x + b" in s["text"] for s in steps)
    chain = steps[titles.index("The chain rule")]["text"]
    assert "df/du" in chain and "du/dw" in chain
    for step in steps:
        for part in step["parts"]:
            if part["kind"] == "math":
                assert part["mathml"] is not None and _math_tags(part["mathml"]) <= ALLOWED_ELEMENTS
    assert "(ok)" in steps[-1]["text"]
    # Explanations are of first derivatives.
    r = client.post("/api/explain", json={"expression": "x'*A*x", "wrt": ["x"], "order": 2})
    assert r.status_code == 422 and "first derivatives" in r.json()["error"]["message"]


# ------------------------------------------------------------------ bad input: 4xx, never 5xx


def test_a_parse_error_names_the_column(client: httpx.Client) -> None:
    r = client.post("/api/parse", json={"expression": "x + sine(x)"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["column"] == 5 and error["text"] == "x + sine(x)" and "'sine'" in error["message"]
    r = client.post("/api/derivative", json={"expression": "x'*A*", "wrt": ["x"]})
    assert r.status_code == 422 and r.json()["error"]["column"] == 6


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"expression": ""}, "non-empty"),
        ({"expression": "x", "wrt": []}, "wrt"),
        ({"expression": "x'*x", "wrt": ["x"], "order": 7}, "order"),
        ({"expression": "x'*x", "wrt": ["x"], "order": True}, "order"),
        ({"expression": "x'*x", "wrt": ["x"], "layout": "sideways"}, "layout"),
        ({"expression": "x'*x", "wrt": ["x"], "backend": "fortran"}, "backend"),
        ({"expression": "x'*x", "wrt": ["x"], "size": 1000}, "size"),
        ({"expression": "x'*x", "types": {"x": "a vector please"}}, "declaration"),
        ({"expression": "x'*x", "types": {"x": "2x3x4"}}, "declaration"),
        ({"expression": "x'*x", "types": {"<b>": "vector"}}, "not a variable name"),
        ({"expression": "x'*x", "wrt": ["x"], "eval": "__import__('os')"}, "unknown field"),
        ({"expression": "x'*x", "wrt": ["1x"]}, "1x"),
        ({"expression": "A^2", "wrt": ["A"], "types": {"A": "3x4"}}, "A"),
    ],
)
def test_malformed_requests_get_422_saying_what(client: httpx.Client, body: dict, fragment: str) -> None:
    endpoint = "/api/derivative" if "wrt" in body or "eval" in body else "/api/parse"
    r = client.post(endpoint, json=body)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["error"]["message"]


def test_protocol_errors(client: httpx.Client) -> None:
    assert client.post("/api/parse", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    r = client.post("/api/parse", content=b'{"expression": "x"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415  # a cross-site form cannot post JSON without CORS
    assert client.get("/api/derivative").status_code == 405
    assert client.get("/static/../app.py").status_code == 404
    assert client.post("/api/parse", json=[1, 2]).status_code == 422


def test_bodies_over_the_limit_get_413(client: httpx.Client) -> None:
    big = b'{"expression": "' + b"x" * 70_000 + b'"}'
    r = client.post("/api/parse", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b" " * 1000

    r = client.post("/api/parse", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_expressions_over_the_length_limit_get_422(client: httpx.Client) -> None:
    r = client.post("/api/parse", json={"expression": "x+" * 1000 + "x"})
    assert r.status_code == 422 and r.json()["error"]["limit"] == "max_expression_length"


def test_the_node_limit_is_a_422_naming_it() -> None:
    # The worker's own code path, with a small node limit (2,000 characters cannot reach 50,000).
    request = validate("derivative", {"expression": "norm2(tanh(W2*tanh(W1*x)))^2", "wrt": ["W1"], "order": 2})
    status, body = answer("derivative", request, WebLimits(max_nodes=10))
    assert status == 422 and body["error"]["limit"] == "max_nodes"


def test_a_runaway_derivation_is_stopped_with_503_and_the_server_keeps_answering(client: httpx.Client) -> None:
    before = client.get("/api/health").json()["restarts"]
    r = client.post("/api/derivative", json={"expression": RUNAWAY, "wrt": ["x"], "order": 3})
    assert r.status_code == 503
    assert "time limit of 3 s" in r.json()["error"]["message"]
    health = client.get("/api/health").json()
    assert health["restarts"] == before + 1 and health["workers"] == 2
    r = client.post("/api/derivative", json={"expression": "sum(x)", "wrt": ["x"]})
    assert r.status_code == 200 and _same(r.json()["results"][0]["text"], "ones(n)")


# ------------------------------------------------------------------ escaping and headers


@pytest.mark.parametrize(
    "text",
    ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "x + '</math><script>'", "<math><mi>x</mi></math>"],
)
def test_markup_in_an_expression_is_an_error_in_json_never_markup(client: httpx.Client, text: str) -> None:
    r = client.post("/api/parse", json={"expression": text})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["text"] == text  # returned as data; the page shows it with textContent


def test_mathml_looking_names_are_text_inside_mathml(client: httpx.Client) -> None:
    r = client.post("/api/derivative", json={"expression": "mtext'*math*mi + script", "wrt": ["mtext"]})
    assert r.status_code == 200, r.text
    markup = r.json()["results"][0]["mathml"]
    assert _math_tags(markup) <= ALLOWED_ELEMENTS and "script" not in _math_tags(markup)
    # latex2mathml spells a long name letter by letter; read together they are the names.
    text = "".join(ET.fromstring(markup).itertext())
    assert "mtext" in text and "math" in text and "mi" in text


def test_the_mathml_cleaner_refuses_what_is_not_presentation_markup() -> None:
    # latex2mathml copies \text{...} unescaped: the cleaner must not pass it through.
    assert mathml("\\text{<script>alert(1)</script>}") is None
    assert mathml("\\text{a & b}") is None or "<script" not in (mathml("\\text{a & b}") or "")
    cleaned = mathml('\\text{say "hi"}')
    assert cleaned is None or _math_tags(cleaned) <= ALLOWED_ELEMENTS
    assert mathml("\\frac{\\partial f}{\\partial x} = A^\\top").startswith("<math")


def test_security_headers_and_no_cors(client: httpx.Client) -> None:
    for path in ("/", "/static/app.js", "/api/health", "/no/such/page"):
        r = client.get(path, headers={"origin": "https://elsewhere.example"})
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in r.headers
    r = client.options("/api/derivative", headers={"origin": "https://elsewhere.example",
                                                   "access-control-request-method": "POST"})  # fmt: skip
    assert "access-control-allow-origin" not in r.headers


def test_another_host_name_is_refused(client: httpx.Client) -> None:
    # A page elsewhere that rebinds its DNS name to 127.0.0.1 still sends its own Host.
    assert client.get("/api/health", headers={"host": "attacker.example"}).status_code == 400


def test_the_page_loads_nothing_from_other_hosts(client: httpx.Client) -> None:
    page = client.get("/").text
    references = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert references and all(ref.startswith("/") or ref.startswith("data:") for ref in references)
    static = resources.files("matrixcalculus.web").joinpath("static")
    for name in ("index.html", "app.js", "style.css"):
        text = static.joinpath(name).read_text()
        # The one URL is MathML's namespace name, which is never fetched.
        assert re.findall(r"https?://[^\s\"')]+", text.replace("http://www.w3.org/1998/Math/MathML", "")) == []
        assert "eval(" not in text and "innerHTML" not in text and "new Function" not in text


# ------------------------------------------------------------------ the command


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


def test_serving_beyond_loopback_prints_a_warning() -> None:
    port = free_port()
    command = ["serve", "--host", "0.0.0.0", "--port", str(port), "--workers", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "matrixcalculus.cli", *command],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert "warning: listening on 0.0.0.0" in first and "anyone" in first
    finally:
        stop(process)


def test_without_the_web_extra_serve_says_how_to_install_it() -> None:
    # As if starlette were not installed: the import fails, and the message names the extra.
    code = "import sys; sys.modules['starlette'] = None; from matrixcalculus.cli import main; sys.exit(main(['serve']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert 'pip install "matrixcalculus[web]"' in out.stderr and "Traceback" not in out.stderr


def test_serve_usage_errors_exit_2() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "matrixcalculus.cli", "serve", "--port", "99999"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "--port" in out.stderr and "Traceback" not in out.stderr
