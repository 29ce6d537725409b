"""The Redis cache backend of production settings (CACHE_URL): Django's, keeping one client per connection pool.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every cache operation, and building one
registers some 170 response callbacks — on the API's hot path (one nonce check per signed call) that cost more
than the round trip to Redis (docs/benchmarks.md). A ``redis.Redis`` is safe to share between threads (each
command borrows a connection from the pool), so one per pool is kept. Behaviour is otherwise Django's.
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            # Two threads racing here build two clients over the same pool; either is fine to keep.
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._clients[index] = self._client(connection_pool=self._pools[index])
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient

    def redis_client(self, *, write: bool = True):
        """The underlying ``redis.Redis``, for callers that pipeline several commands in one round trip."""
        return self._cache.get_client(write=write)
