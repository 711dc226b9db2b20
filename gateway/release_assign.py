"""Which API keys get the canary: sticky per key, and balanced to the weight across keys.

Hashing alone (``release_routing.bucket``) is sticky and needs no state, but each key is a
coin flip: over 200 keys at weight 10 % the canary's share has a standard deviation of 2.1
points, so one release in six lands more than 3 points off. With Redis (shared by every
worker and replica), the first request of each key in a release is assigned by deficit: the
key goes to the canary while the canary has fewer than ``weight × keys seen`` keys, and the
assignment is stored (``HSETNX``: a key keeps its first answer), so the share stays within one
key of the weight and every later request of that key is routed the same. Without Redis, or
while it fails, the hash decides (the share is then binomial). Each worker also remembers
every decision it made (an LRU of ``MEMO_KEYS``), so a key never changes version within a
worker, whatever Redis does; only a key first seen during a Redis outage can be decided
differently by two workers.
"""

from __future__ import annotations

from cachetools import LRUCache

from gateway.redis_link import RedisLink
from gateway.release_routing import bucket
from visionserve.release import ReleaseLabels

__all__ = ["KeyAssigner"]

#: KEYS[1] assignments hash, KEYS[2] counters hash; ARGV key id, weight, ttl (s).
_ASSIGN = """
local seen = redis.call('HGET', KEYS[1], ARGV[1])
if seen then return tonumber(seen) end
local n = redis.call('HINCRBY', KEYS[2], 'keys', 1)
local c = tonumber(redis.call('HGET', KEYS[2], 'canary') or '0')
local pick = 0
if c < tonumber(ARGV[2]) * n then
  pick = 1
  redis.call('HINCRBY', KEYS[2], 'canary', 1)
end
redis.call('HSET', KEYS[1], ARGV[1], pick)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return pick
"""
#: Assignments outlive any release worth running (renewed by every new key).
_TTL_S = 30 * 86400
#: Decisions each worker remembers (about 150 bytes each).
MEMO_KEYS = 200_000


class KeyAssigner:
    """Decides, once per key and release, whether the key's requests go to the canary.

    Args:
        redis: the shared Redis, or None (the hash decides).
    """

    def __init__(self, redis: RedisLink | None) -> None:
        self._redis = redis
        self._script = redis.client.register_script(_ASSIGN) if redis is not None else None
        self._memo: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=MEMO_KEYS)

    async def in_canary(self, release: ReleaseLabels, key_id: str) -> bool:
        """True when ``key_id``'s requests go to the canary of ``release``."""
        if release.weight <= 0.0:
            return False
        if release.weight >= 1.0:
            return True
        memo_key = (release.release_id, key_id)
        known = self._memo.get(memo_key)
        if known is None:
            known = self._memo[memo_key] = await self._decide(release, key_id)
        return known

    async def _decide(self, release: ReleaseLabels, key_id: str) -> bool:
        if self._redis is not None and self._script is not None:
            prefix = f"vs:release:{release.release_id}"
            script = self._script
            ok, pick = await self._redis.call(
                "release_assign",
                lambda: script(keys=[f"{prefix}:keys", f"{prefix}:counts"], args=[key_id, release.weight, _TTL_S]),
            )
            if ok and pick is not None:
                return int(pick) == 1
        return bucket(key_id, release.release_id) < release.weight
