"""The one way rs_guard builds a Redis client (the optional `redis` extra) and names its errors."""

from __future__ import annotations

from typing import Any

from .errors import ConfigurationError


def redis_client(
    who: str, client: Any, url: str | None, timeout: float
) -> tuple[Any, bool, tuple[type[BaseException], ...]]:
    """(client, whether we created it, the exceptions meaning "Redis cannot answer").

    Exactly one of `client` / `url`. Imported here: redis is an optional extra and the core
    must import without it.
    """
    try:
        import redis.asyncio as redis_asyncio
        import redis.exceptions as redis_exceptions
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            f"{who} needs the redis package: pip install 'rs_guard[redis]'"
        ) from None
    if (client is None) == (url is None):
        raise ConfigurationError(f"give {who} either a client or a url")
    owns = client is None
    if url is not None:
        client = redis_asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    return client, owns, (redis_exceptions.RedisError, OSError, TimeoutError)
