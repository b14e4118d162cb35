"""The litestar application: routes, dependencies, middleware, problem handlers."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from arq.connections import RedisSettings, create_pool
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from helpdesk import __version__
from helpdesk.agents.passwords import Passwords
from helpdesk.agents.routes import AgentController, AuthController, GroupController
from helpdesk.audit.routes import AuditController
from helpdesk.config import Settings
from helpdesk.customers.routes import CustomerController
from helpdesk.db.pool import create_pool as create_db_pool
from helpdesk.observability import Metrics
from helpdesk.tickets.routes import AttachmentController, TicketController
from helpdesk.web.auth import BearerTokenMiddleware
from helpdesk.web.context import AppContext, provide_context, provide_db, provide_principal
from helpdesk.web.middleware import json_body_sanitizer, request_context_middleware
from helpdesk.web.problems import EXCEPTION_HANDLERS
from helpdesk.web.system import healthz, readyz
from helpdesk.web.system import metrics as metrics_endpoint


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
        redis = await create_pool(redis_settings(settings.redis_url))
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
            await redis.aclose()
            await pool.close()

    return Litestar(
        route_handlers=[
            healthz,
            readyz,
            metrics_endpoint,
            AuthController,
            AgentController,
            GroupController,
            TicketController,
            AttachmentController,
            CustomerController,
            AuditController,
        ],
        lifespan=[lifespan],
        state=State({"metrics": app_metrics}),
        dependencies={
            "ctx": Provide(provide_context, sync_to_thread=False),
            "db": Provide(provide_db),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        middleware=[
            request_context_middleware,
            DefineMiddleware(BearerTokenMiddleware, exclude=["^/schema"]),
            json_body_sanitizer(settings.request_max_body_bytes),
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


def _no_debug(config: AppConfig) -> AppConfig:
    config.debug = False
    return config
