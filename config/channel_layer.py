"""The site's Channels layer: channels-redis, with group_send in two round trips, not four.

channels-redis sends a message to a group in four sequential round trips to Redis: drop
the group's expired members, read the members, drop expired messages of their channels,
then add the message with a Lua script. The lab host sends five snapshots a second to the
group of each watched lab, so at 40 labs that was 800 round trips a second, each one a
wakeup of Redis and of the host's event loop, and each one on the path of the update lag.
Here the first two go out together, and so do the last two: the same commands in the
same order, so the same result. Nothing else of the layer changes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from channels_redis import core

logger = logging.getLogger("channels_redis.core")

# The script channels-redis sends (channels_redis/core.py, RedisChannelLayer.group_send):
# add the message to every channel under its capacity, and count those that were full.
GROUP_SEND_LUA = """
    local over_capacity = 0
    local current_time = ARGV[#ARGV - 1]
    local expiry = ARGV[#ARGV]
    for i=1,#KEYS do
        if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
            redis.call('ZADD', KEYS[i], current_time, ARGV[i])
            redis.call('EXPIRE', KEYS[i], expiry)
        else
            over_capacity = over_capacity + 1
        end
    end
    return over_capacity
"""


class RedisChannelLayer(core.RedisChannelLayer):
    """channels_redis.core.RedisChannelLayer with a pipelined group_send."""

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert self.require_valid_group_name(group), "Group name not valid"
        key = self._group_key(group)
        connection = self.connection(self.consistent_hash(group))
        async with connection.pipeline(transaction=False) as pipe:
            # Discard members past group_expiry, then read who is left.
            pipe.zremrangebyscore(key, min=0, max=int(time.time()) - self.group_expiry)
            pipe.zrange(key, 0, -1)
            _, members = await pipe.execute()
        channel_names = [member.decode("utf8") for member in members]
        by_connection, messages, capacities = self._map_channel_keys_to_connection(
            channel_names, message
        )
        for index, channel_keys in by_connection.items():
            now = time.time()
            async with self.connection(index).pipeline(transaction=False) as pipe:
                for channel_key in channel_keys:  # messages past their expiry go first
                    pipe.zremrangebyscore(channel_key, min=0, max=int(now) - int(self.expiry))
                pipe.eval(
                    GROUP_SEND_LUA,
                    len(channel_keys),
                    *channel_keys,
                    *(messages[channel_key] for channel_key in channel_keys),
                    *(capacities[channel_key] for channel_key in channel_keys),
                    now,
                    self.expiry,
                )
                over_capacity = (await pipe.execute())[-1]
            if over_capacity > 0:
                logger.info(
                    "%s of %s channels over capacity in group %s",
                    over_capacity,
                    len(channel_names),
                    group,
                )
