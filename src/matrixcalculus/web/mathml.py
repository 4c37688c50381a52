"""MathML for the page, from our own LaTeX: typeset locally, with no script or network.

``latex2mathml`` turns the LaTeX the library prints into MathML, which Chromium and Firefox
render natively. Its output is not trusted as it is (it copies ``\\text{...}`` into the markup
unescaped), so it is parsed again and written back out with only MathML presentation elements
and their layout attributes: anything else, or markup that does not parse, gives ``None`` and
the page shows the LaTeX source instead.

>>> mathml("x^\\\\top A x").startswith('<math xmlns="http://www.w3.org/1998/Math/MathML"')
True
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

__all__ = ["ALLOWED_ATTRIBUTES", "ALLOWED_ELEMENTS", "mathml"]

_NS = "{http://www.w3.org/1998/Math/MathML}"

# MathML presentation markup: layout only, nothing that links, loads or runs anything.
ALLOWED_ELEMENTS = frozenset(
    "math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot mover munder munderover "
    "mtable mtr mtd mstyle mpadded mphantom menclose mfenced semantics".split()
)
ALLOWED_ATTRIBUTES = frozenset(
    "display mathvariant stretchy fence form separator lspace rspace width height depth linethickness "
    "columnalign rowalign columnspacing rowspacing columnlines rowlines frame displaystyle scriptlevel "
    "accent accentunder movablelimits largeop symmetric minsize maxsize open close separators notation "
    "align".split()
)


def mathml(latex: str, display: str = "block") -> str | None:
    """The MathML of ``latex``, cleaned to presentation markup; ``None`` when it cannot be."""
    from latex2mathml.converter import convert  # the web extra

    try:
        raw = convert(latex, display=display)
        root = ET.fromstring(raw)
    except Exception:  # latex2mathml raises assorted errors on LaTeX it does not know
        return None
    out: list[str] = []
    if not _write(root, out):
        return None
    return "".join(out)


def _write(element: ET.Element, out: list[str]) -> bool:
    """Append the cleaned markup of ``element``; False if it holds anything not allowed."""
    tag = element.tag.removeprefix(_NS)
    if tag not in ALLOWED_ELEMENTS:
        return False
    attributes = "".join(
        f" {name}={quoteattr(value)}" for name, value in sorted(element.attrib.items()) if name in ALLOWED_ATTRIBUTES
    )
    if any(name not in ALLOWED_ATTRIBUTES for name in element.attrib):
        return False
    if tag == "math":
        attributes = ' xmlns="http://www.w3.org/1998/Math/MathML"' + attributes
    out.append(f"<{tag}{attributes}>")
    out.append(escape(element.text or ""))
    for child in element:
        if not _write(child, out):
            return False
        out.append(escape(child.tail or ""))
    out.append(f"</{tag}>")
    return True
