"""What COMMAND says about the commands of ``kvb serve``: the ten-field descriptions of COMMAND and
COMMAND INFO, COMMAND DOCS, COMMAND LIST and the keys of a call (COMMAND GETKEYS[ANDFLAGS]).

Clients act on these: redis-py's cluster client takes a command's keys from its first/last/step
key positions, or, for a command flagged ``movablekeys``, from its key specifications or COMMAND
GETKEYS; its client-side cache trusts ``readonly`` commands whose tips do not say
``nondeterministic_output``. So each command is described as Redis 7.0 describes the same command
(flags, ACL categories, tips, key specifications), with the arity kvb checks, the subcommands kvb
has, and ``noscript`` on exactly the commands kvb's Lua scripts may not call.
"""

from __future__ import annotations

from typing import Any

from kv_backend.server.commands.docs import Docs, read_table
from kv_backend.server.commands.registry import COMMANDS, upper
from kv_backend.server.protocol import OrderedSet
from kv_backend.structures import CommandError, glob_match

# One line a command (``container|sub`` for a subcommand): its flags (``noscript`` and
# ``movablekeys`` are added below, from what kvb does), the ACL categories its flags do not imply,
# its tips (``req:``/``resp:`` stand for ``request_policy:``/``response_policy:``) and its key
# specifications, separated by ``;``, each ``FLAGS@BEGIN[FIND]``: BEGIN is an argument index or
# ``KEYWORD>startfrom``; FIND is ``:lastkey[,keystep[,limit]]`` (a range, by default ``:0,1,0``:
# the one key at BEGIN) or ``#keynumidx,firstkey,keystep`` (a count of keys given in the call).
_TABLE = """
ping                  | fast | @connection | req:all_shards resp:all_succeeded
echo                  | loading stale fast | @connection
quit                  | loading stale fast no_auth allow_busy | @connection
reset                 | loading stale fast no_auth allow_busy | @connection
select                | loading stale fast | @connection
auth                  | loading stale fast no_auth allow_busy | @connection
hello                 | loading stale fast no_auth allow_busy | @connection
client
client|reply          | loading stale | @connection
client|list           | admin loading stale | @connection | nondeterministic_output
client|getname        | loading stale | @connection
client|info           | loading stale | @connection | nondeterministic_output
client|help           | loading stale | @connection
client|unblock        | admin loading stale | @connection
client|no-evict       | admin loading stale | @connection
client|id             | loading stale | @connection
client|kill           | admin loading stale | @connection
client|setname        | loading stale | @connection
client|setinfo        | loading stale | @connection | req:all_nodes resp:all_succeeded
client|no-touch       | loading stale | @connection
client|tracking       | loading stale | @connection
client|caching        | loading stale | @connection
client|getredir       | loading stale | @connection
client|trackinginfo   | loading stale | @connection
command               | loading stale | @connection | nondeterministic_output_order
command|docs          | loading stale | @connection | nondeterministic_output_order
command|info          | loading stale | @connection | nondeterministic_output_order
command|help          | loading stale | @connection
command|count         | loading stale | @connection
command|list          | loading stale | @connection | nondeterministic_output_order
command|getkeys       | loading stale | @connection
command|getkeysandflags | loading stale | @connection
config
config|help           | loading stale
config|get            | admin loading stale
config|resetstat      | admin loading stale
config|set            | admin loading stale | | req:all_nodes resp:all_succeeded
config|rewrite        | admin loading stale
readonly              | loading stale fast | @connection
readwrite             | loading stale fast | @connection
asking                | fast | @connection
cluster
cluster|addslots      | admin stale no_async_loading
cluster|addslotsrange | admin stale no_async_loading
cluster|bumpepoch     | admin stale no_async_loading | | nondeterministic_output
cluster|count-failure-reports | admin stale | | nondeterministic_output
cluster|countkeysinslot | stale
cluster|delslots      | admin stale no_async_loading
cluster|delslotsrange | admin stale no_async_loading
cluster|failover      | admin stale no_async_loading
cluster|flushslots    | admin stale no_async_loading
cluster|forget        | admin stale no_async_loading
cluster|getkeysinslot | stale | | nondeterministic_output
cluster|help          | loading stale
cluster|info          | stale | | nondeterministic_output
cluster|keyslot       | stale
cluster|links         | stale | | nondeterministic_output
cluster|meet          | admin stale no_async_loading
cluster|myid          | stale
cluster|nodes         | stale | | nondeterministic_output
cluster|replicas      | admin stale | | nondeterministic_output
cluster|replicate     | admin stale no_async_loading
cluster|reset         | admin stale
cluster|saveconfig    | admin stale no_async_loading
cluster|set-config-epoch | admin stale no_async_loading
cluster|setslot       | admin stale no_async_loading
cluster|shards        | stale | | nondeterministic_output
cluster|slaves        | admin stale | | nondeterministic_output
cluster|slots         | stale | | nondeterministic_output
wait                  | | @connection | req:all_shards resp:agg_min
info                  | loading stale | @dangerous | nondeterministic_output req:all_shards resp:special
time                  | loading stale fast | | nondeterministic_output
lastsave              | loading stale fast | @admin @dangerous | nondeterministic_output
save                  | admin no_async_loading no_multi
bgsave                | admin no_async_loading
shutdown              | admin loading stale no_multi allow_busy
xadd                  | write denyoom fast | @stream | nondeterministic_output | RW,update@1
xlen                  | readonly fast | @stream | | RO@1
xrange                | readonly | @stream | | RO,access@1
xrevrange             | readonly | @stream | | RO,access@1
xread                 | readonly blocking | @stream | | RO,access@STREAMS>1:-1,1,2
xdel                  | write fast | @stream | | RW,delete@1
xtrim                 | write | @stream | nondeterministic_output | RW,delete@1
xgroup
xgroup|create         | write denyoom | @stream | | RW,insert@2
xgroup|delconsumer    | write | @stream | | RW,delete@2
xgroup|help           | loading stale | @stream
xgroup|destroy        | write | @stream | | RW,delete@2
xgroup|createconsumer | write denyoom | @stream | | RW,insert@2
xgroup|setid          | write | @stream | | RW,update@2
xreadgroup            | write blocking | @stream | | RO,access@STREAMS>4:-1,1,2
xack                  | write fast | @stream | | RW,update@1
xpending              | readonly | @stream | nondeterministic_output | RO,access@1
xclaim                | write fast | @stream | nondeterministic_output | RW,update@1
xautoclaim            | write fast | @stream | nondeterministic_output | RW,delete@1
xinfo
xinfo|groups          | readonly | @stream | | RO,access@2
xinfo|consumers       | readonly | @stream | nondeterministic_output | RO,access@2
xinfo|stream          | readonly | @stream | | RO,access@2
xinfo|help            | loading stale | @stream
xsetid                | write denyoom fast | @stream | | RW,update@1
hset                  | write denyoom fast | @hash | | RW,update@1
hmset                 | write denyoom fast | @hash | | RW,update@1
hsetnx                | write denyoom fast | @hash | | RW,insert@1
hget                  | readonly fast | @hash | | RO,access@1
hmget                 | readonly fast | @hash | | RO,access@1
hgetall               | readonly | @hash | nondeterministic_output_order | RO,access@1
hdel                  | write fast | @hash | | RW,delete@1
hincrby               | write denyoom fast | @hash | | RW,access,update@1
hincrbyfloat          | write denyoom fast | @hash | | RW,access,update@1
hexists               | readonly fast | @hash | | RO@1
hlen                  | readonly fast | @hash | | RO@1
hstrlen               | readonly fast | @hash | | RO@1
hkeys                 | readonly | @hash | nondeterministic_output_order | RO,access@1
hvals                 | readonly | @hash | nondeterministic_output_order | RO,access@1
hscan                 | readonly | @hash | nondeterministic_output | RO,access@1
del                   | write | @keyspace | req:multi_shard resp:agg_sum | RM,delete@1:-1
unlink                | write fast | @keyspace | req:multi_shard resp:agg_sum | RM,delete@1:-1
exists                | readonly fast | @keyspace | req:multi_shard resp:agg_sum | RO@1:-1
expire                | write fast | @keyspace | | RW,update@1
pexpire               | write fast | @keyspace | | RW,update@1
expireat              | write fast | @keyspace | | RW,update@1
pexpireat             | write fast | @keyspace | | RW,update@1
ttl                   | readonly fast | @keyspace | nondeterministic_output | RO,access@1
pttl                  | readonly fast | @keyspace | nondeterministic_output | RO,access@1
expiretime            | readonly fast | @keyspace | | RO,access@1
pexpiretime           | readonly fast | @keyspace | | RO,access@1
persist               | write fast | @keyspace | | RW,update@1
type                  | readonly fast | @keyspace | | RO@1
keys                  | readonly | @keyspace @dangerous | req:all_shards nondeterministic_output_order
scan                  | readonly | @keyspace | nondeterministic_output req:special
rename                | write | @keyspace | | RW,access,delete@1; OW,update@2
renamenx              | write fast | @keyspace | | RW,access,delete@1; OW,insert@2
dbsize                | readonly fast | @keyspace | req:all_shards resp:agg_sum
flushdb               | write | @keyspace @dangerous | req:all_shards resp:all_succeeded
flushall              | write | @keyspace @dangerous | req:all_shards resp:all_succeeded
randomkey             | readonly | @keyspace | req:all_shards nondeterministic_output
lpush                 | write denyoom fast | @list | | RW,insert@1
rpush                 | write denyoom fast | @list | | RW,insert@1
lpushx                | write denyoom fast | @list | | RW,insert@1
rpushx                | write denyoom fast | @list | | RW,insert@1
lpop                  | write fast | @list | | RW,access,delete@1
rpop                  | write fast | @list | | RW,access,delete@1
lrange                | readonly | @list | | RO,access@1
llen                  | readonly fast | @list | | RO@1
lindex                | readonly | @list | | RO,access@1
lset                  | write denyoom | @list | | RW,update@1
lrem                  | write | @list | | RW,delete@1
ltrim                 | write | @list | | RW,delete@1
linsert               | write denyoom | @list | | RW,insert@1
rpoplpush             | write denyoom | @list | | RW,access,delete@1; RW,insert@2
lmove                 | write denyoom | @list | | RW,access,delete@1; RW,insert@2
blpop                 | write blocking | @list | | RW,access,delete@1:-2
brpop                 | write blocking | @list | | RW,access,delete@1:-2
blmove                | write denyoom blocking | @list | | RW,access,delete@1; RW,insert@2
brpoplpush            | write denyoom blocking | @list | | RW,access,delete@1; RW,insert@2
publish               | pubsub loading stale fast
subscribe             | pubsub loading stale
psubscribe            | pubsub loading stale
unsubscribe           | pubsub loading stale
punsubscribe          | pubsub loading stale
pubsub
pubsub|channels       | pubsub loading stale
pubsub|help           | loading stale
pubsub|numpat         | pubsub loading stale
pubsub|numsub         | pubsub loading stale
pubsub|shardchannels  | pubsub loading stale
pubsub|shardnumsub    | pubsub loading stale
spublish              | pubsub loading stale fast | | | not_key@1
ssubscribe            | pubsub loading stale | | | not_key@1:-1
sunsubscribe          | pubsub loading stale | | | not_key@1:-1
eval                  | stale skip_monitor no_mandatory_keys | @scripting | | RW,access,update@2#0,1,1
evalsha               | stale skip_monitor no_mandatory_keys | @scripting | | RW,access,update@2#0,1,1
eval_ro               | readonly stale skip_monitor no_mandatory_keys | @scripting | | RO,access@2#0,1,1
evalsha_ro            | readonly stale skip_monitor no_mandatory_keys | @scripting | | RO,access@2#0,1,1
script
script|exists         | | @scripting | req:all_shards resp:agg_logical_and
script|flush          | | @scripting | req:all_nodes resp:all_succeeded
script|help           | loading stale | @scripting
script|kill           | allow_busy | @scripting | req:all_shards resp:one_succeeded
script|load           | stale | @scripting | req:all_nodes resp:all_succeeded
fcall                 | stale skip_monitor no_mandatory_keys | @scripting | | RW,access,update@2#0,1,1
fcall_ro              | readonly stale skip_monitor no_mandatory_keys | @scripting | | RO,access@2#0,1,1
function
function|load         | write denyoom | @scripting | req:all_shards resp:all_succeeded
function|delete       | write | @scripting | req:all_shards resp:all_succeeded
function|list         | | @scripting | nondeterministic_output_order
function|stats        | allow_busy | @scripting | nondeterministic_output req:all_shards resp:special
function|kill         | allow_busy | @scripting | req:all_shards resp:one_succeeded
function|flush        | write | @scripting | req:all_shards resp:all_succeeded
function|help         | loading stale | @scripting
function|dump         | | @scripting
function|restore      | write denyoom | @scripting | req:all_shards resp:all_succeeded
sadd                  | write denyoom fast | @set | | RW,insert@1
srem                  | write fast | @set | | RW,delete@1
smembers              | readonly | @set | nondeterministic_output_order | RO,access@1
sismember             | readonly fast | @set | | RO@1
smismember            | readonly fast | @set | | RO,access@1
scard                 | readonly fast | @set | | RO@1
sinter                | readonly | @set | nondeterministic_output_order | RO,access@1:-1
sunion                | readonly | @set | nondeterministic_output_order | RO,access@1:-1
sdiff                 | readonly | @set | nondeterministic_output_order | RO,access@1:-1
spop                  | write fast | @set | nondeterministic_output | RW,access,delete@1
srandmember           | readonly | @set | nondeterministic_output | RO,access@1
sscan                 | readonly | @set | nondeterministic_output | RO,access@1
get                   | readonly fast | @string | | RO,access@1
set                   | write denyoom | @string | | RW,access,update,variable_flags@1
setex                 | write denyoom | @string | | OW,update@1
psetex                | write denyoom | @string | | OW,update@1
setnx                 | write denyoom fast | @string | | OW,insert@1
mget                  | readonly fast | @string | req:multi_shard | RO,access@1:-1
mset                  | write denyoom | @string | req:multi_shard resp:all_succeeded | OW,update@1:-1,2
msetnx                | write denyoom | @string | req:multi_shard resp:agg_min | OW,insert@1:-1,2
getdel                | write fast | @string | | RW,access,delete@1
getset                | write denyoom fast | @string | | RW,access,update@1
getex                 | write fast | @string | | RW,access,update@1
append                | write denyoom fast | @string | | RW,insert@1
strlen                | readonly fast | @string | | RO@1
getrange              | readonly | @string | | RO,access@1
substr                | readonly | @string | | RO,access@1
lcs                   | readonly | @string | | RO,access@1:1
sort | write denyoom | @set @sortedset @list @dangerous | | RO,access@1;RO,access@?;OW,update@?
sort_ro               | readonly | @set @sortedset @list @dangerous | | RO,access@1;RO,access@?
incr                  | write denyoom fast | @string | | RW,access,update@1
decr                  | write denyoom fast | @string | | RW,access,update@1
incrby                | write denyoom fast | @string | | RW,access,update@1
decrby                | write denyoom fast | @string | | RW,access,update@1
incrbyfloat           | write denyoom fast | @string | | RW,access,update@1
multi                 | loading stale fast allow_busy | @transaction
discard               | loading stale fast allow_busy | @transaction
exec                  | loading stale skip_slowlog | @transaction
watch                 | loading stale fast allow_busy | @transaction | | RO@1:-1
unwatch               | loading stale fast allow_busy | @transaction
zadd                  | write denyoom fast | @sortedset | | RW,update@1
zincrby               | write denyoom fast | @sortedset | | RW,access,update@1
zrem                  | write fast | @sortedset | | RW,delete@1
zscore                | readonly fast | @sortedset | | RO,access@1
zmscore               | readonly fast | @sortedset | | RO,access@1
zcard                 | readonly fast | @sortedset | | RO@1
zcount                | readonly fast | @sortedset | | RO,access@1
zrange                | readonly | @sortedset | | RO,access@1
zrevrange             | readonly | @sortedset | | RO,access@1
zrangebyscore         | readonly | @sortedset | | RO,access@1
zrevrangebyscore      | readonly | @sortedset | | RO,access@1
zrank                 | readonly fast | @sortedset | | RO,access@1
zrevrank              | readonly fast | @sortedset | | RO,access@1
zremrangebyscore      | write | @sortedset | | RW,delete@1
zremrangebyrank       | write | @sortedset | | RW,delete@1
zscan                 | readonly | @sortedset | nondeterministic_output | RO,access@1
setbit                | write denyoom | @bitmap | | RW,access,update@1
getbit                | readonly fast | @bitmap | | RO,access@1
bitcount              | readonly | @bitmap | | RO,access@1
bitpos                | readonly | @bitmap | | RO,access@1
bitop                 | write denyoom | @bitmap | | OW,update@2;RO,access@3:-1
bitfield              | write denyoom | @bitmap | | RW,access,update,variable_flags@1
bitfield_ro           | readonly fast | @bitmap | | RO,access@1
hrandfield            | readonly | @hash | nondeterministic_output | RO,access@1
pfadd                 | write denyoom fast | @hyperloglog | | RW,insert@1
pfcount               | readonly | @hyperloglog | | RW,access@1:-1
pfmerge               | write denyoom | @hyperloglog | | RW,access,insert@1;RO,access@2:-1
copy                  | write denyoom | @keyspace | | RO,access@1;OW,update@2
move                  | write fast | @keyspace | | RW,access,update@1
dump                  | readonly | @keyspace | nondeterministic_output | RO,access@1
restore               | write denyoom | @keyspace @dangerous | | OW,update@1
swapdb                | write fast | @keyspace @dangerous
touch                 | readonly fast | @keyspace | req:multi_shard resp:agg_sum | RO@1:-1
object
object|encoding       | readonly | @keyspace | nondeterministic_output | RO@2
object|freq           | readonly | @keyspace | nondeterministic_output | RO@2
object|idletime       | readonly | @keyspace | nondeterministic_output | RO@2
object|refcount       | readonly | @keyspace | nondeterministic_output | RO@2
object|help           | loading stale | @keyspace
lpos                  | readonly | @list | | RO,access@1
lmpop                 | write | @list | | RW,access,delete@1#0,1,1
blmpop                | write blocking | @list | | RW,access,delete@2#0,1,1
smove                 | write fast | @set | | RW,access,delete@1;RW,insert@2
sinterstore           | write denyoom | @set | | RW,update@1;RO,access@2:-1
sunionstore           | write denyoom | @set | | OW,update@1;RO,access@2:-1
sdiffstore            | write denyoom | @set | | OW,update@1;RO,access@2:-1
sintercard            | readonly | @set | | RO,access@1#0,1,1
setrange              | write denyoom | @string | | RW,update@1
zrangebylex           | readonly | @sortedset | | RO,access@1
zrevrangebylex        | readonly | @sortedset | | RO,access@1
zlexcount             | readonly fast | @sortedset | | RO,access@1
zremrangebylex        | write | @sortedset | | RW,delete@1
zpopmin               | write fast | @sortedset | | RW,access,delete@1
zpopmax               | write fast | @sortedset | | RW,access,delete@1
bzpopmin              | write blocking fast | @sortedset | | RW,access,delete@1:-2
bzpopmax              | write blocking fast | @sortedset | | RW,access,delete@1:-2
zmpop                 | write | @sortedset | | RW,access,delete@1#0,1,1
bzmpop                | write blocking | @sortedset | | RW,access,delete@2#0,1,1
zrandmember           | readonly | @sortedset | nondeterministic_output | RO,access@1
zunionstore           | write denyoom | @sortedset | | OW,update@1;RO,access@2#0,1,1
zinterstore           | write denyoom | @sortedset | | OW,update@1;RO,access@2#0,1,1
zdiffstore            | write denyoom | @sortedset | | OW,update@1;RO,access@2#0,1,1
zunion                | readonly | @sortedset | | RO,access@1#0,1,1
zinter                | readonly | @sortedset | | RO,access@1#0,1,1
zdiff                 | readonly | @sortedset | | RO,access@1#0,1,1
zintercard            | readonly | @sortedset | | RO,access@1#0,1,1
zrangestore           | write denyoom | @sortedset | | OW,update@1;RO,access@2
geoadd                | write denyoom | @geo | | RW,update@1
geopos                | readonly | @geo | | RO,access@1
geodist               | readonly | @geo | | RO,access@1
geohash               | readonly | @geo | | RO,access@1
geosearch             | readonly | @geo | | RO,access@1
geosearchstore        | write denyoom | @geo | | OW,update@1;RO,access@2
georadius             | write denyoom | @geo | | RO,access@1;OW,update@STORE>6;OW,update@STOREDIST>6
georadius_ro          | readonly | @geo | | RO,access@1
georadiusbymember     | write denyoom | @geo | | RO,access@1;OW,update@STORE>5;OW,update@STOREDIST>5
georadiusbymember_ro  | readonly | @geo | | RO,access@1
monitor               | admin loading stale
slowlog
slowlog|len           | admin loading stale | | req:all_nodes resp:agg_sum nondeterministic_output
slowlog|get           | admin loading stale | | req:all_nodes nondeterministic_output
slowlog|help          | loading stale
slowlog|reset         | admin loading stale | | req:all_nodes resp:all_succeeded
latency
latency|latest        | admin loading stale | | nondeterministic_output req:all_nodes resp:special
latency|doctor        | admin loading stale | | nondeterministic_output req:all_nodes resp:special
latency|help          | loading stale
latency|histogram     | admin loading stale | | nondeterministic_output req:all_nodes resp:special
latency|reset         | admin loading stale | | req:all_nodes resp:all_succeeded
latency|graph         | admin loading stale | | nondeterministic_output req:all_nodes resp:special
latency|history       | admin loading stale | | nondeterministic_output req:all_nodes resp:special
memory
memory|purge          | | | req:all_shards resp:all_succeeded
memory|doctor         | | | nondeterministic_output req:all_shards resp:special
memory|help           | loading stale
memory|stats          | | | nondeterministic_output req:all_shards resp:special
memory|usage          | readonly | | | RO@2
memory|malloc-stats   | | | nondeterministic_output req:all_shards resp:special
"""

#: Redis's order of command flags and ACL categories in its replies.
_FLAG_ORDER = (  # noqa: SIM905 - two lines of words are easier to read and compare
    "write readonly denyoom module admin pubsub noscript blocking loading stale skip_monitor skip_slowlog "
    "asking fast no_auth may_replicate no_mandatory_keys no_async_loading no_multi movablekeys allow_busy"
).split()
_CATEGORY_ORDER = (  # noqa: SIM905
    "@keyspace @read @write @set @sortedset @list @hash @string @bitmap @hyperloglog @geo @stream @pubsub "
    "@admin @fast @slow @blocking @dangerous @connection @transaction @scripting"
).split()
#: The ACL categories a flag implies (and ``@slow`` without ``fast``), as Redis derives them.
_IMPLIED = {
    "write": ("@write",),
    "readonly": ("@read",),
    "admin": ("@admin", "@dangerous"),
    "pubsub": ("@pubsub",),
    "fast": ("@fast",),
    "blocking": ("@blocking",),
}
#: COMMAND DOCS's group of a command, by its ACL category (``server`` otherwise).
_DOCS_GROUPS = {
    "@keyspace": "generic",
    "@string": "string",
    "@list": "list",
    "@set": "set",
    "@sortedset": "sorted-set",
    "@hash": "hash",
    "@stream": "stream",
    "@bitmap": "bitmap",
    "@hyperloglog": "hyperloglog",
    "@geo": "geo",
    "@pubsub": "pubsub",
    "@transaction": "transactions",
    "@scripting": "scripting",
    "@connection": "connection",
}
#: Commands Redis files under another group than their ACL categories say (COMMAND under server,
#: though @connection).
_GROUP_OF = {
    "readonly": "cluster",
    "readwrite": "cluster",
    "asking": "cluster",
    "cluster": "cluster",
    "command": "server",
    "dbsize": "server",
    "flushall": "server",
    "flushdb": "server",
    "swapdb": "server",
    "sort": "generic",
    "sort_ro": "generic",
    "wait": "generic",
}


class KeySpec:
    """One key specification: where a command's keys start (``index``, or after ``keyword``) and how
    many follow (a range up to ``lastkey`` every ``step``, or ``keynum``: a count given in the call)."""

    __slots__ = (
        "firstkey",
        "flags",
        "index",
        "keynum",
        "keyword",
        "lastkey",
        "limit",
        "startfrom",
        "step",
        "unknown",
    )

    def __init__(self, text: str) -> None:
        flags, _, where = text.partition("@")
        self.flags = tuple(flags.split(","))
        #: ``?``: Redis cannot say where these keys are (SORT's BY/GET patterns, its STORE key).
        self.unknown = where == "?"
        if self.unknown:
            where = "0"
        self.keynum = "#" in where
        begin, _, find = where.replace("#", ":").partition(":")
        self.keyword: str | None = None
        self.index = self.startfrom = 0
        if ">" in begin:
            self.keyword, startfrom = begin.split(">")
            self.startfrom = int(startfrom)
        else:
            self.index = int(begin)
        numbers = [int(n) for n in find.split(",")] if find else []
        self.firstkey = self.limit = 0
        if self.keynum:  # lastkey holds keynumidx: where the count of keys is, after BEGIN
            self.lastkey, self.firstkey, self.step = numbers
        else:
            self.lastkey, self.step, self.limit = (numbers + [0, 1, 0][len(numbers) :])[:3]

    @property
    def simple(self) -> bool:
        """A fixed range after a fixed index: what the legacy first/last/step positions can say."""
        return self.keyword is None and not self.keynum and not self.limit and not self.unknown

    def reply(self) -> dict[bytes, Any]:
        if self.unknown:
            unknown: dict[bytes, Any] = {b"type": b"unknown", b"spec": {}}
            return {b"flags": OrderedSet(self.flags), b"begin_search": unknown, b"find_keys": unknown}
        if self.keyword is None:
            begin: dict[bytes, Any] = {b"type": b"index", b"spec": {b"index": self.index}}
        else:
            spec = {b"keyword": self.keyword.encode(), b"startfrom": self.startfrom}
            begin = {b"type": b"keyword", b"spec": spec}
        if self.keynum:
            spec = {b"keynumidx": self.lastkey, b"firstkey": self.firstkey, b"keystep": self.step}
            find = {b"type": b"keynum", b"spec": spec}
        else:
            spec = {b"lastkey": self.lastkey, b"keystep": self.step, b"limit": self.limit}
            find = {b"type": b"range", b"spec": spec}
        return {b"flags": OrderedSet(self.flags), b"begin_search": begin, b"find_keys": find}

    def positions(self, argv: list[bytes]) -> list[int] | None:
        """The positions of this spec's keys in ``argv`` (the call), found as Redis finds them: None
        if the call does not fit the spec; none if its keyword is not there."""
        argc = len(argv)
        if self.unknown:
            return []
        if self.keyword is None:
            first = self.index
        else:
            word = self.keyword.encode()
            found = [i for i in range(self.startfrom, argc - 1) if upper(argv[i]) == word]
            if not found:
                return []
            first = found[0] + 1
        if self.keynum:
            if first + self.lastkey >= argc:
                return None
            raw = argv[first + self.lastkey]
            if not raw.isdigit() or len(raw) > 18 or (raw[:1] == b"0" and len(raw) > 1):  # as string2ll
                return None
            first += self.firstkey
            last = first + int(raw) - 1
        elif self.lastkey >= 0:
            last = first + self.lastkey
        elif self.limit:
            last = first + (argc - first) // self.limit + self.lastkey
        else:
            last = argc + self.lastkey
        if last >= argc or last < first or first >= argc:
            return None
        return list(range(first, last + 1, self.step))


class Info:
    """A command's (or subcommand's) description."""

    __slots__ = ("arity", "categories", "flags", "keys", "name", "specs", "subcommands", "tips")

    def __init__(self, name: str, arity: int, row: list[str], noscript: bool) -> None:
        flags, categories, tips, specs = [*row, "", "", "", ""][:4]
        self.name, self.arity = name, arity
        self.specs = [KeySpec(s.strip()) for s in specs.split(";") if s.strip()]
        flag_set = set(flags.split())
        if noscript:
            flag_set.add("noscript")
        if any(not s.simple for s in self.specs):
            flag_set.add("movablekeys")
        self.flags = tuple(f for f in _FLAG_ORDER if f in flag_set)
        implied = {c for f in self.flags for c in _IMPLIED.get(f, ())}
        if "fast" not in flag_set:
            implied.add("@slow")
        if "@scripting" in categories.split():
            implied.discard("@read")
        wanted = implied | set(categories.split())
        self.categories = tuple(c for c in _CATEGORY_ORDER if c in wanted)
        self.tips = tuple(
            t.replace("req:", "request_policy:").replace("resp:", "response_policy:") for t in tips.split()
        )
        self.subcommands: list[Info] = []
        self.keys = self._legacy_range()

    def _legacy_range(self) -> tuple[int, int, int]:
        """First key, last key (negative: from the end) and step, from the fixed-range key specs."""
        first = last = step = 0
        for spec in self.specs:
            if not spec.simple:
                continue
            end = spec.lastkey if spec.lastkey < 0 else spec.index + spec.lastkey
            if not first:
                first, last, step = spec.index, end, spec.step
            elif last >= 0 and spec.step == step and spec.index == last + step:
                last = end
        return first, last, step

    def reply(self) -> list[Any]:
        """The ten fields of COMMAND INFO: name, arity, flags, first key, last key, step, ACL
        categories, tips, key specifications, subcommands."""
        first, last, step = self.keys
        return [
            self.name.encode(),
            self.arity,
            OrderedSet(self.flags),
            first,
            last,
            step,
            OrderedSet(self.categories),
            OrderedSet(t.encode() for t in self.tips),
            OrderedSet(s.reply() for s in self.specs),
            [s.reply() for s in self.subcommands] if self.subcommands else OrderedSet(),
        ]

    def group(self) -> str:
        """COMMAND DOCS's group of a command, which its subcommands share: by its ACL categories, a
        container's by those of its first subcommand but HELP (it has none of its own)."""
        if self.name in _GROUP_OF:
            return _GROUP_OF[self.name]
        which = next((s for s in self.subcommands if not s.name.endswith("|help")), self)
        return next((_DOCS_GROUPS[c] for c in which.categories if c in _DOCS_GROUPS), "server")

    def docs(self) -> dict[bytes, Any]:
        """COMMAND DOCS: summary, since, group, complexity, deprecation and arguments, from the docs
        table (:mod:`kv_backend.server.commands.docs_table`), and the subcommands'."""
        out = _DOCS[self.name].reply(_DESCRIBED[self.name.split("|")[0]].group(), len(self.specs))
        if self.subcommands:
            out[b"subcommands"] = {s.name.encode(): s.docs() for s in self.subcommands}
        return out


_DESCRIBED: dict[str, Info] = {}  # every command and subcommand, by its full lower-case name
_DOCS: dict[str, Docs] = {}  # their docs, by the same names
_TOP: list[Info] = []  # the commands, in the order they were registered


def _build() -> None:
    from kv_backend.server.scripting import _FORBIDDEN  # the commands scripts may not call

    rows = {}
    for line in _TABLE.strip().splitlines():
        name = line.split()[0]
        rows[name] = [c.strip() for c in line[len(name) :].split("|")][1:]
    for key, cmd in COMMANDS.items():
        # a container's subcommands are what a script may not call, not the container itself
        info = _describe(cmd.name, cmd.arity, rows, key in _FORBIDDEN and cmd.subcommands is None)
        for sub, arity in (cmd.subcommands or {}).items():
            full = f"{cmd.name}|{sub.decode().lower()}"
            noscript = key in _FORBIDDEN or full.encode() in _FORBIDDEN
            info.subcommands.append(_describe(full, arity, rows, noscript))
        _TOP.append(info)
    if set(rows) != set(_DESCRIBED):
        raise LookupError(f"the command table and the commands differ: {sorted(set(rows) ^ set(_DESCRIBED))}")
    _DOCS.update(read_table())
    if set(_DOCS) != set(_DESCRIBED):
        raise LookupError(f"the docs table and the commands differ: {sorted(set(_DOCS) ^ set(_DESCRIBED))}")


def _describe(name: str, arity: int, rows: dict[str, list[str]], noscript: bool) -> Info:
    info = _DESCRIBED[name] = Info(name, arity, rows[name], noscript)
    return info


def described() -> list[Info]:
    """The descriptions of all commands (subcommands inside their container's)."""
    if not _TOP:
        _build()
    return _TOP


def lookup(name: bytes) -> Info | None:
    """A command's or subcommand's (``config|get``) description, by name in any case."""
    described()
    return _DESCRIBED.get(name.decode("utf-8", "replace").lower())


def names(filter_by: bytes | None = None, value: bytes = b"") -> list[bytes]:
    """COMMAND LIST: every command and subcommand name, or those in an ACL category (``ACLCAT``),
    matching a glob pattern in any case (``PATTERN``) or of a module (``MODULE``: none here)."""
    category = "@" + value.decode("utf-8", "replace").lower()
    out = []
    for info in described():
        for one in (info, *info.subcommands):
            if filter_by == b"MODULE" or (filter_by == b"ACLCAT" and category not in one.categories):
                continue
            if filter_by == b"PATTERN" and not glob_match(value.lower(), one.name.encode()):
                continue
            out.append(one.name.encode())
    return out


def keys_of(call: list[bytes]) -> list[tuple[bytes, tuple[str, ...]]]:
    """COMMAND GETKEYS[ANDFLAGS]: the keys of ``call`` with their key-spec flags, or Redis's error."""
    info = lookup(call[0])
    if info is not None and info.subcommands and len(call) > 1:
        info = lookup(call[0] + b"|" + call[1])
    if info is None:
        raise CommandError("ERR Invalid command specified")
    # as Redis, a key spec flagged not_key (SPUBLISH's shard channel) names no key
    specs = [spec for spec in info.specs if "not_key" not in spec.flags]
    if not specs:
        raise CommandError("ERR The command has no key arguments")
    if (info.arity > 0 and len(call) != info.arity) or len(call) < -info.arity:
        raise CommandError("ERR Invalid number of arguments specified for command")
    found: list[tuple[bytes, tuple[str, ...]]] = []
    if info.name == "sort":
        return sort_keys(call)
    for spec in specs:
        positions = spec.positions(call)
        if positions is None:  # the call does not fit the spec: no keys at all
            found = []
            break
        flags = spec.flags
        if "variable_flags" in flags:  # what SET and BITFIELD do to their key depends on their words
            flags = bitfield_key_flags(call) if info.name == "bitfield" else set_key_flags(call)
        found += [(call[i], flags) for i in positions]
    if not found and "no_mandatory_keys" not in info.flags:
        raise CommandError("ERR Invalid arguments specified for command")
    return found


def set_key_flags(call: list[bytes]) -> tuple[str, ...]:
    """SET's key: read and updated with GET, else overwritten."""
    get = any(upper(a) == b"GET" for a in call[3:])
    return ("RW", "access", "update") if get else ("OW", "update")


def bitfield_key_flags(call: list[bytes]) -> tuple[str, ...]:
    """BITFIELD's key as Redis flags it: only read when its words are whole GETs and OVERFLOWs;
    updated as soon as a SET or INCRBY comes, or a word it cannot read (a syntax error)."""
    i = 2
    while i < len(call):
        word, left = upper(call[i]), len(call) - i - 1
        if word == b"GET" and left >= 2:
            i += 3
        elif word == b"OVERFLOW" and left >= 1:
            i += 2
        else:
            return ("RW", "access", "update")
    return ("RO", "access")


def sort_keys(call: list[bytes]) -> list[tuple[bytes, tuple[str, ...]]]:
    """SORT's keys as Redis finds them: the sorted key and the last STORE key; the arguments of
    LIMIT, GET and BY are skipped over (so a key named ``store`` after them is not one)."""
    found: list[tuple[bytes, tuple[str, ...]]] = [(call[1], ("RO", "access"))]
    store = None
    i = 2
    while i < len(call):
        word = upper(call[i])
        if word in (b"LIMIT", b"GET", b"BY"):
            i += 2 if word == b"LIMIT" else 1
        elif word == b"STORE" and i + 1 < len(call):
            store = call[i + 1]
        i += 1
    if store is not None:
        found.append((store, ("OW", "update")))
    return found
