"""The FastAPI application: routers, JSON errors, health and readiness, offline docs, the web UI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facesearch.core.errors import FacesearchError, RateLimitedError
from facesearch.engine.engine import Engine
from facesearch.server import api_accountability, api_gallery, api_people, api_search, api_subjects, compreface
from facesearch.server.compreface_shapes import INCORRECT_ARGUMENT, compreface_answer, compreface_invalid_code
from facesearch.server.retention import RetentionSweeper
from facesearch.server.service import Service, service

STATIC = Path(__file__).parent / "static"
UI_HEADERS = {
    # The UI loads only its own script and style, shows images it fetched itself, and is never framed.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
COMPREFACE_PREFIX = "/api/v1/"
log = logging.getLogger("facesearch.server")

DESCRIPTION = """\
Search photo collections you are entitled to process for every photo of a face; verify two faces; answer
access and erasure requests. Every call needs an API key (`X-API-Key` header), made with
`facesearch keys create`. Searches are audited under the key's declared purpose and rate-limited per key.

Errors are JSON: `{"status": 404, "code": "not_found", "message": "..."}` (CompreFace-compatible paths
under `/api/v1` answer `{"code": <number>, "message": "..."}` as CompreFace does).
"""


def create_app(engine: Engine) -> FastAPI:
    svc = Service.over(engine)
    sweeper = RetentionSweeper(svc, engine.settings.purge_interval_minutes * 60.0)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.warm_up()  # load the models before the first request (readiness waits for this)
        sweeper.start()
        yield
        sweeper.stop()

    app = FastAPIOffline(title="facesearch", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.service = svc
    for module in (api_gallery, api_search, api_people, api_subjects, api_accountability, compreface):
        app.include_router(module.router)
    _add_error_handlers(app)
    _add_health(app)
    _add_ui_headers(app)
    app.add_middleware(CatchUnexpected)  # added last: outside the others
    app.mount("/ui", StaticFiles(directory=STATIC, html=True), name="ui")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/")

    return app


def _add_ui_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def ui_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/ui"):
            response.headers.update(UI_HEADERS)
        else:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def _add_health(app: FastAPI) -> None:
    @app.get("/health", tags=["service"], summary="Liveness: the process answers")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["service"], summary="Readiness: the catalog answers and the models are loaded")
    def ready(request: Request) -> JSONResponse:
        svc = service(request)
        try:
            collections = len(svc.engine.catalog.collection_names())  # one catalog read: no lock
        except Exception as exc:  # any failure means not ready; the reason is logged, not leaked
            log.warning("not ready: %r", exc)
            return _error(503, "not_ready", "the catalog does not answer; see the server log", 503)
        return JSONResponse({"status": "ready", "collections": collections})


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FacesearchError)
    def facesearch_error(request: Request, exc: FacesearchError) -> JSONResponse:
        headers = {"Retry-After": str(round(exc.retry_after))} if isinstance(exc, RateLimitedError) else None
        if request.url.path.startswith(COMPREFACE_PREFIX):
            status, number, message = compreface_answer(exc)  # CompreFace's status and code where it has one
            return _error(status, exc.code, message, number, request, headers)
        return _error(exc.http_status, exc.code, exc.message, exc.exit_code, request, headers)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(_problem(error) for error in exc.errors())
        if request.url.path.startswith(COMPREFACE_PREFIX):  # CompreFace's 400, with its code for the first problem
            number = compreface_invalid_code(exc.errors()[0] if exc.errors() else {})
            return _error(400, "invalid_request", f"the request is not valid: {problems}", number, request)
        return _error(422, "invalid_request", f"the request is not valid: {problems}", 2, request)

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that cannot be parsed: an invalid request like any other
            compreface = request.url.path.startswith(COMPREFACE_PREFIX)  # CompreFace's 400 and code
            status, number = (400, INCORRECT_ARGUMENT) if compreface else (422, 2)
            return _error(status, "invalid_request", f"the request is not valid: {exc.detail}", number, request)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = {"Allow": _allowed(app, request)} if exc.status_code == 405 else dict(exc.headers or {})
        return _error(exc.status_code, code, str(exc.detail), 2, request, headers)


class CatchUnexpected:
    """An unexpected error becomes a JSON 500 (its traceback logged, never sent) on a connection that stays open.

    Starlette's own catch-all answers and then raises again, so that the server drops the connection; this
    one, outside every other middleware, answers and is done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            request = Request(scope)
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            if started:  # part of an answer is out: nothing more can be said on this connection
                raise
            message = "internal error (a bug: the server log has the details; please report it)"
            await _error(500, "internal", message, 1, request)(scope, receive, send)


def _allowed(app: FastAPI, request: Request) -> str:
    """Every method some route serves at the request's path (Starlette names only the first route's)."""
    scope = {key: value for key, value in request.scope.items() if key not in ("route", "endpoint", "path_params")}
    return ", ".join(
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in app.router.routes)
    )


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path"))
    return f"{where or 'request'}: {error.get('msg', 'invalid')}"


def _error(
    status: int,
    code: str,
    message: str,
    number: int,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if request is not None and request.url.path.startswith(COMPREFACE_PREFIX):
        body: dict[str, Any] = {"message": message, "code": number, "error": code}
    else:
        body = {"status": status, "code": code, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)
