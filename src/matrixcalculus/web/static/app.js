// The matrixcalculus page: type an expression, see its derivative, explanation and code.
// Vanilla JS, no build step. Everything the person typed is shown with textContent; the only
// markup inserted is MathML from our server, rebuilt here element by element from an allowlist.
"use strict";

const MATHML = "http://www.w3.org/1998/Math/MathML";
const MATH_ELEMENTS = new Set(("math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot " +
  "mover munder munderover mtable mtr mtd mstyle mpadded mphantom menclose mfenced semantics").split(" "));
const MATH_ATTRIBUTES = new Set(("display mathvariant stretchy fence form separator lspace rspace width height " +
  "depth linethickness columnalign rowalign columnspacing rowspacing columnlines rowlines frame displaystyle " +
  "scriptlevel accent accentunder movablelimits largeop symmetric minsize maxsize open close separators " +
  "notation align").split(" "));
const KINDS = ["scalar", "vector", "matrix", "symmetric matrix"];

const $ = (id) => document.getElementById(id);

const state = {
  expression: "", types: {}, wrt: [], stack: "", order: 1, layout: "shape", backend: "numpy", size: 3,
};
let variables = [];      // the last parse's variables: [{name, kind, shape}]
let generation = 0;      // answers to older requests are dropped
let explainAvailable = false;
let examples = [];

// ------------------------------------------------------------------ talking to the server

let pending = 0;  // requests in flight; body[data-busy] says so (for tests and styles)

async function api(path, body) {
  pending += 1;
  document.body.dataset.busy = "true";
  try {
    const response = await fetch(path, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
    });
    let data;
    try { data = await response.json(); } catch (e) { data = {error: {message: `the server answered ${response.status}`}}; }
    return {status: response.status, data};
  } catch (e) {
    return {status: 0, data: {error: {message: "the server cannot be reached; is matrixcalculus serve still running?"}}};
  } finally {
    pending -= 1;
    if (pending === 0) delete document.body.dataset.busy;
  }
}

function request() {
  const wrt = state.stack.trim() ? [...state.wrt, state.stack.trim()] : [...state.wrt];
  return {expression: state.expression, types: state.types, wrt, order: state.order, layout: state.layout};
}

// ------------------------------------------------------------------ rendering helpers

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

// MathML from the server, parsed as XML (nothing runs) and copied through the allowlist.
function math(markup) {
  if (!markup) return null;
  const doc = new DOMParser().parseFromString(markup, "application/xml");
  if (doc.getElementsByTagName("parsererror").length) return null;
  const copy = (source) => {
    if (source.namespaceURI !== MATHML || !MATH_ELEMENTS.has(source.localName)) return null;
    const target = document.createElementNS(MATHML, source.localName);
    for (const attribute of source.attributes) {
      if (MATH_ATTRIBUTES.has(attribute.name)) target.setAttribute(attribute.name, attribute.value);
    }
    for (const child of source.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) target.append(document.createTextNode(child.nodeValue));
      else if (child.nodeType === Node.ELEMENT_NODE) {
        const inner = copy(child);
        if (inner === null) return null;
        target.append(inner);
      }
    }
    return target;
  };
  return copy(doc.documentElement);
}

function showMath(container, markup, fallback) {
  container.replaceChildren();
  const node = math(markup);
  if (node) container.append(node);
  else container.append(el("code", {text: fallback}));
}

async function copyText(text, status) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const area = el("textarea", {"aria-hidden": "true", class: "offscreen"});
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  if (status) {
    status.textContent = "copied";
    setTimeout(() => { status.textContent = ""; }, 1500);
  }
}

function copyButton(label, text) {
  const status = el("span", {class: "status", role: "status"});
  const button = el("button", {type: "button", text: label, class: "small"});
  button.addEventListener("click", () => copyText(text, status));
  return [button, status];
}

// ------------------------------------------------------------------ the parse: errors, variables, wrt

function showError(error) {
  const box = $("parse-error");
  box.hidden = false;
  $("expression").setAttribute("aria-invalid", "true");
  if (error.column && error.text !== undefined) {
    // The text and a caret under the column, as the command line prints it.
    $("error-caret").textContent = `${error.text}\n${" ".repeat(error.column - 1)}^`;
    $("error-caret").hidden = false;
  } else {
    $("error-caret").hidden = true;
    $("error-caret").textContent = "";
  }
  $("error-message").textContent = error.message;
}

function clearError() {
  $("parse-error").hidden = true;
  $("expression").removeAttribute("aria-invalid");
}

function showExpression(expression) {
  showMath($("typeset-input"), expression.mathml, expression.text);
  const notices = $("notices");
  notices.replaceChildren(...expression.notices.map((text) => el("li", {text})));
  variables = expression.variables;
  renderVariables();
  renderWrt();
}

function renderVariables() {
  const body = $("variables").tBodies[0];
  body.replaceChildren();
  for (const v of variables) {
    const declared = Object.prototype.hasOwnProperty.call(state.types, v.name);
    const kind = el("select", {"aria-label": `kind of ${v.name}`, "data-name": v.name});
    for (const k of KINDS) {
      const option = el("option", {value: k, text: k});
      if (k === v.kind) option.selected = true;
      kind.append(option);
    }
    kind.addEventListener("change", () => { state.types[v.name] = kind.value; refresh(); });
    const shape = el("input", {type: "text", value: v.shape || "", size: "8", spellcheck: "false",
      "aria-label": `shape of ${v.name} (e.g. 3x4, n, m x n)`, "data-name": v.name, placeholder: "scalar"});
    shape.addEventListener("change", () => {
      const text = shape.value.trim();
      state.types[v.name] = text === "" ? "scalar" : text;
      refresh();
    });
    const cells = [el("td", {}, el("code", {text: v.name})), el("td", {}, kind), el("td", {}, shape)];
    const last = el("td");
    if (declared) {
      const undo = el("button", {type: "button", class: "small", text: "by name",
        title: "forget this declaration", "aria-label": `forget the declaration of ${v.name}`});
      undo.addEventListener("click", () => { delete state.types[v.name]; refresh(); });
      last.append(el("span", {class: "declared", text: "declared "}), undo);
    }
    body.append(el("tr", {}, ...cells, last));
  }
}

function renderWrt() {
  const names = variables.map((v) => v.name);
  state.wrt = state.wrt.filter((name) => names.includes(name));
  if (!state.wrt.length && !state.stack.trim() && names.length) state.wrt = [names[0]];
  const box = $("wrt");
  box.replaceChildren();
  for (const name of names) {
    const input = el("input", {type: "checkbox", value: name, id: `wrt-${name}`});
    input.checked = state.wrt.includes(name);
    input.addEventListener("change", () => {
      state.wrt = names.filter((n) => n === name ? input.checked : state.wrt.includes(n));
      derive();
    });
    box.append(el("label", {class: "check"}, input, el("code", {text: name})));
  }
}

// ------------------------------------------------------------------ derivative, code, explanation

function renderResults(results) {
  const container = $("results");
  container.replaceChildren();
  for (const r of results) {
    const typeset = el("div", {class: "math result-math"});
    showMath(typeset, r.mathml, `${r.label} = ${r.text}`);
    const text = `${r.label} = ${r.text}`;
    const plain = el("div", {class: "plain"}, el("code", {class: "result-text", text}), ...copyButton("Copy", r.text));
    const details = el("dl", {class: "facts"},
      el("dt", {text: "shape"}), el("dd", {text: `${r.shape} (${r.layout} layout)`}),
      el("dt", {text: "LaTeX"}), el("dd", {}, el("code", {class: "latex", text: r.latex}), ...copyButton("Copy", r.latex)),
      el("dt", {text: "index notation"}), el("dd", {}, el("code", {class: "index", text: r.index})));
    if (r.check) {
      details.append(el("dt", {text: "numeric check"}),
        el("dd", {class: r.check.ok ? "ok" : "mismatch", text: r.check.text}));
    }
    container.append(el("article", {class: "result", "data-wrt": r.wrt}, typeset, plain, details));
  }
}

async function derive() {
  const mine = ++generation;
  writeUrl();
  const body = request();
  if (!body.wrt.length) {
    $("result-status").textContent = "Choose a variable to differentiate by.";
    clearDerived();
    return;
  }
  $("result-status").textContent = "computing…";
  const {status, data} = await api("/api/derivative", {...body, check: true});
  if (mine !== generation) return;
  if (status !== 200) {
    $("result-status").textContent = "";
    clearDerived();
    $("results").replaceChildren(el("p", {class: "error-text", text: data.error.message}));
    if (data.error.column) showError(data.error);
    return;
  }
  $("result-status").textContent = "";
  renderResults(data.results);
  compileCode(mine);
  showExplicit(mine);
  if (explainAvailable) explain(mine);
}

async function compileCode(mine) {
  const {status, data} = await api("/api/compile", {...request(), backend: state.backend});
  if (mine !== generation) return;
  $("source").textContent = status === 200 ? data.source : `# ${data.error.message}`;
  $("source").dataset.filename = status === 200 ? data.filename : "";
}

function hideExplanation() { $("explanation").hidden = true; }

function clearDerived() {
  // Nothing derived is shown for an expression that has no derivative (yet).
  $("results").replaceChildren();
  $("source").textContent = "";
  $("explicit").replaceChildren();
  hideExplanation();
}

async function showExplicit(mine) {
  // The tutorials' explicit small case: each derivative entry by entry, and its picture.
  $("explicit-status").textContent = "computing…";
  const {status, data} = await api("/api/explicit", {...request(), size: state.size});
  if (mine !== generation) return;
  const container = $("explicit");
  container.replaceChildren();
  $("explicit-status").textContent = "";
  if (status !== 200) {
    container.append(el("p", {class: "error-text", text: data.error.message}));
    return;
  }
  for (const r of data.results) {
    const formula = el("div", {class: "math"});
    showMath(formula, r.mathml, r.text);
    const figure = el("figure", {class: "explicit", "data-wrt": r.wrt}, el("h3", {text: r.title}), formula);
    if (r.picture_error) figure.append(el("p", {class: "status", text: r.picture_error}));
    if (r.picture) {
      // An SVG shown as an image: nothing inside it can run.
      figure.append(el("img", {src: `data:image/svg+xml;base64,${r.picture}`, alt: r.picture_alt, class: "picture"}));
    }
    figure.append(el("figcaption", {text: `${r.shape}; plain text:`}), el("pre", {class: "explicit-text", text: r.text}));
    container.append(figure);
  }
}

async function explain(mine) {
  // The derivation step by step (/api/explain): each step a collapsible section, its prose as
  // text and its formulas typeset. Explanations are of first derivatives.
  if (state.order !== 1) { hideExplanation(); return; }
  const {status, data} = await api("/api/explain", {...request(), size: state.size});
  if (mine !== generation) return;
  if (status !== 200) { hideExplanation(); return; }
  $("question").textContent = data.question;
  const steps = $("steps");
  steps.replaceChildren();
  data.steps.forEach((step, k) => {
    const details = el("details", {class: "step"});
    details.open = k < 3;  // the question, the intermediates and the chain rule open; the rest a click away
    details.append(el("summary", {text: `${k + 1}. ${step.title}`}));
    for (const part of step.parts) {
      if (part.kind === "prose") {
        details.append(el("p", {text: part.text}));
      } else {
        const formula = el("div", {class: "math step-math"});
        showMath(formula, part.mathml, part.text);
        details.append(formula);
      }
    }
    steps.append(details);
  });
  $("explanation").hidden = false;
}

// ------------------------------------------------------------------ the whole cycle

let timer = null;

async function refresh() {
  const mine = ++generation;
  state.expression = $("expression").value;
  writeUrl();
  if (!state.expression.trim()) {
    clearError();
    $("typeset-input").replaceChildren();
    clearDerived();
    $("result-status").textContent = "Type an expression, e.g. x'*A*x.";
    return;
  }
  const {status, data} = await api("/api/parse", {expression: state.expression, types: state.types});
  if (mine !== generation) return;
  if (status !== 200) {
    showError(data.error);
    $("typeset-input").replaceChildren();
    $("result-status").textContent = "";
    clearDerived();
    return;
  }
  clearError();
  // Declarations of names no longer in the expression are dropped (and leave the link).
  const names = new Set(data.expression.variables.map((v) => v.name));
  for (const name of Object.keys(state.types)) if (!names.has(name)) delete state.types[name];
  showExpression(data.expression);
  await derive();
}

function scheduleRefresh() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 200);
}

// ------------------------------------------------------------------ the state in the URL

function writeUrl() {
  const params = new URLSearchParams();
  params.set("f", state.expression);
  for (const name of state.wrt) params.append("wrt", name);
  if (state.stack.trim()) params.append("wrt", state.stack.trim());
  if (state.order !== 1) params.set("order", String(state.order));
  if (state.layout !== "shape") params.set("layout", state.layout);
  for (const [name, spec] of Object.entries(state.types)) params.append("type", `${name}:${spec}`);
  if (state.backend !== "numpy") params.set("backend", state.backend);
  if (state.size !== 3) params.set("size", String(state.size));
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

function readUrl() {
  const params = new URLSearchParams(location.search);
  if (!params.has("f")) return false;
  state.expression = params.get("f");
  const wrt = params.getAll("wrt");
  state.wrt = wrt.filter((w) => !w.startsWith("["));
  state.stack = wrt.find((w) => w.startsWith("[")) || "";
  state.order = Math.min(3, Math.max(1, parseInt(params.get("order") || "1", 10) || 1));
  state.layout = ["shape", "numerator", "denominator"].includes(params.get("layout")) ? params.get("layout") : "shape";
  state.backend = ["numpy", "torch", "jax"].includes(params.get("backend")) ? params.get("backend") : "numpy";
  state.size = Math.min(6, Math.max(1, parseInt(params.get("size") || "3", 10) || 3));
  state.types = {};
  for (const item of params.getAll("type")) {
    const at = item.indexOf(":");
    if (at > 0) state.types[item.slice(0, at)] = item.slice(at + 1);
  }
  return true;
}

function showState() {
  $("expression").value = state.expression;
  $("wrt-stack").value = state.stack;
  $("order").value = String(state.order);
  $("layout").value = state.layout;
  $("backend").value = state.backend;
  $("size").value = String(state.size);
}

function loadExample(example) {
  state.expression = example.expression;
  state.types = {...example.types};
  state.wrt = example.wrt.filter((w) => !w.startsWith("["));
  state.stack = example.wrt.find((w) => w.startsWith("[")) || "";
  state.order = 1;
  state.layout = example.layout;
  showState();
  refresh();
}

// ------------------------------------------------------------------ start

async function start() {
  $("expression").addEventListener("input", scheduleRefresh);
  $("expression").addEventListener("keydown", (event) => {
    if (event.key === "Enter") { clearTimeout(timer); refresh(); }
  });
  $("wrt-stack").addEventListener("change", () => { state.stack = $("wrt-stack").value; derive(); });
  $("order").addEventListener("change", () => { state.order = parseInt($("order").value, 10); derive(); });
  $("layout").addEventListener("change", () => { state.layout = $("layout").value; derive(); });
  $("backend").addEventListener("change", () => {
    state.backend = $("backend").value;
    writeUrl();
    compileCode(generation);
  });
  $("size").addEventListener("change", () => {
    state.size = parseInt($("size").value, 10);
    writeUrl();
    showExplicit(generation);
    if (explainAvailable) explain(generation);
  });
  $("copy-code").addEventListener("click", () => copyText($("source").textContent, $("code-status")));
  $("download-code").addEventListener("click", () => {
    const blob = new Blob([$("source").textContent], {type: "text/x-python"});
    const link = el("a", {href: URL.createObjectURL(blob), download: $("source").dataset.filename || "derivatives.py"});
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });
  $("share").addEventListener("click", () => copyText(location.href, $("share-status")));
  $("examples").addEventListener("change", () => {
    const k = $("examples").value;
    if (k !== "") loadExample(examples[parseInt(k, 10)]);
  });

  try {
    const health = await (await fetch("/api/health")).json();
    explainAvailable = health.endpoints.includes("/api/explain");
    examples = (await (await fetch("/api/examples")).json()).examples;
  } catch (e) { examples = []; }
  examples.forEach((example, k) => {
    $("examples").append(el("option", {value: String(k), text: `${example.title}: ${example.expression}`}));
  });
  if (!readUrl()) {
    state.expression = "x'*A*x";
    state.wrt = ["x"];
  }
  showState();
  await refresh();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
