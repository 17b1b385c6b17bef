"""``sampler serve``: a local web app over the library (JSON API first; the page follows).

:mod:`~sampler.serve.api` answers requests as plain functions; :mod:`~sampler.serve.app`
is the ASGI application (Starlette) that checks the Host header, bounds bodies and concurrent
model calls, and turns bad input into 4xx JSON errors. Only the ``serve`` extra (starlette,
uvicorn) is needed, and only when serving.
"""
