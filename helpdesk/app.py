"""The litestar application: routes, dependencies, middleware, problem handlers."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from redis.asyncio import ConnectionPool

from helpdesk import __version__
from helpdesk.agents.passwords import Passwords
from helpdesk.agents.routes import AgentController, AuthController, GroupController
from helpdesk.audit.routes import AuditController
from helpdesk.channels.email.routes import (
    EmailAccountController,
    EmailIntakeController,
    EmailQuarantineController,
    EmailSourceController,
)
from helpdesk.channels.routes import ChannelAccountController
from helpdesk.channels.webchat.routes import WebChatController
from helpdesk.channels.webhooks import WebhookController
from helpdesk.config import Settings
from helpdesk.console.routes import console_files, home
from helpdesk.csat.routes import CsatMetricsController, CsatPageController
from helpdesk.customers.routes import CustomerController
from helpdesk.db.pool import create_pool as create_db_pool
from helpdesk.observability import Metrics
from helpdesk.routing.routes import (
    AvailabilityController,
    EscalationController,
    RoutingAdminController,
    RoutingStatsController,
)
from helpdesk.sla.routes import SlaAdminController, SlaBoardController, TicketSlaController
from helpdesk.templates.routes import TemplateController
from helpdesk.tickets.routes import AttachmentController, TicketController
from helpdesk.web.auth import BearerTokenMiddleware
from helpdesk.web.context import AppContext, provide_context, provide_db, provide_principal
from helpdesk.web.meta import meta
from helpdesk.web.middleware import input_sanitizer, observe_request
from helpdesk.web.openapi import refine as refine_openapi
from helpdesk.web.problems import EXCEPTION_HANDLERS
from helpdesk.web.system import healthz, readyz
from helpdesk.web.system import metrics as metrics_endpoint


class HelpdeskApp(Litestar):
    """Litestar with request ids, access logs and metrics around every HTTP request."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        metrics: Metrics | None = getattr(self.state, "metrics", None)
        await observe_request(super().__call__, scope, receive, send, metrics)


def connect_redis(url: str) -> ArqRedis:
    """A Redis client for enqueueing that connects lazily.

    Unlike arq's `create_pool` it does not ping at start-up, so the API starts (and
    `/readyz` reports the outage) while Redis is down; jobs are then left to the relay.
    Requests use Redis only for best-effort work (enqueueing, rate-limit counts), so
    its timeouts are short: a frozen Redis costs a request at most about a second.
    """
    pool = ConnectionPool.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    return ArqRedis(connection_pool=pool)


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 2
    settings.conn_retries = 1
    return settings


def create_app(
    settings: Settings, passwords: Passwords | None = None, metrics: Metrics | None = None
) -> Litestar:
    """Build the API for fully resolved settings (URLs of real servers, not embedded ones).

    `metrics` lets `helpdesk run` share one registry between the API and its worker.
    """
    app_metrics = metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        pool = await create_db_pool(
            settings.database_url, settings.database_pool_min, settings.database_pool_max
        )
        redis = connect_redis(settings.redis_url)
        app.state.ctx = AppContext(
            settings=settings,
            pool=pool,
            redis=redis,
            passwords=passwords or Passwords(settings.auth),
            metrics=app_metrics,
        )
        try:
            yield
        finally:
            await app.state.ctx.close()
            await redis.aclose()
            await pool.close()

    app = HelpdeskApp(
        route_handlers=[
            healthz,
            readyz,
            home,
            console_files,
            metrics_endpoint,
            meta,
            AuthController,
            AgentController,
            GroupController,
            TicketController,
            TicketSlaController,
            TemplateController,
            SlaAdminController,
            SlaBoardController,
            RoutingAdminController,
            RoutingStatsController,
            AvailabilityController,
            EscalationController,
            CsatPageController,
            CsatMetricsController,
            AttachmentController,
            CustomerController,
            AuditController,
            EmailIntakeController,
            EmailAccountController,
            EmailQuarantineController,
            EmailSourceController,
            ChannelAccountController,
            WebhookController,
            WebChatController,
        ],
        lifespan=[lifespan],
        state=State({"metrics": app_metrics}),
        dependencies={
            "ctx": Provide(provide_context, sync_to_thread=False),
            "db": Provide(provide_db),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        middleware=[
            DefineMiddleware(BearerTokenMiddleware, exclude=["^/schema", "^/console", "^/$"]),
            input_sanitizer(settings.request_max_body_bytes),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.request_max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="helpdesk",
            version=__version__,
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        on_app_init=[_no_debug],
        logging_config=None,
        debug=False,
    )
    build_openapi(app)
    return app


def build_openapi(app: Litestar) -> None:
    """Build the OpenAPI document once, now (a broken one fails at start), and refine it.

    litestar 2.25 adds the path parameters a handler does not take (`account` of the
    web chat controller) to that handler's parsed signature while it builds the
    document; a request validated afterwards then reports a bogus `account` error next
    to the real one. The signatures are put back as they were.
    """
    handlers = [h for route in app.routes for h in getattr(route, "route_handlers", [])]
    signatures = [(h, dict(h.parsed_fn_signature.parameters)) for h in handlers]
    try:
        refine_openapi(app.openapi_schema)
    finally:
        for handler, parameters in signatures:
            handler.parsed_fn_signature.parameters.clear()
            handler.parsed_fn_signature.parameters.update(parameters)


def _no_debug(config: AppConfig) -> AppConfig:
    config.debug = False
    return config
