"""The local web page: ``matrixcalculus serve`` (needs the ``web`` extra).

A Starlette app (:mod:`matrixcalculus.web.app`) served by uvicorn on 127.0.0.1; the page and
its JSON API are documented in ``docs/web.md``. Nothing here is imported by the library itself:
the command line imports :mod:`matrixcalculus.web.server` only for ``serve``.
"""
