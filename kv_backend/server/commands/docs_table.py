"""The docs of ``kvb serve``'s commands, which COMMAND DOCS answers (read by
:mod:`kv_backend.server.commands.docs`, whose docstring gives the notation of a syntax line).

One entry per command and subcommand (``container|sub``): ``NAME SINCE`` (the Redis version that
brought the command), then ``= `` its arguments, ``- `` a summary, ``~ `` its complexity in kvb
(in records of the store read or written, and elements handled) and, for a command Redis
deprecates, ``! `` the version since which, and what to use instead. A line of either kind may go
on in the next line with the same mark.
"""

DOCS = """
append 2.0.0
= key value
- Add bytes at the end of a string (creating it if missing) and answer its new length.
~ O(1) records, O(L) bytes copied for a result of length L
asking 3.0.0
- In a cluster, let the next command reach a slot being imported. Refused: not a cluster node.
~ O(1)
auth 1.0.0
= [username] password
- Authenticate the connection with the server's password (the only user is "default").
~ O(1)
bgsave 1.0.0
= [SCHEDULE]
- Flush the store's log to disk; there is no snapshot to write, so it is done at once.
~ O(1)
bitcount 2.6.0
= key [start:integer end:integer [BYTE|BIT]]
- Count the bits set to 1 in a string, or in a range of its bytes or bits.
~ O(L), L the bytes in the range
bitfield 3.2.0
= key [GET (encoding offset:integer)|([OVERFLOW (WRAP|SAT|FAIL)] (SET (encoding offset:integer
= value:integer)|INCRBY (encoding offset:integer increment:integer)))]...
- Read, write and add to integer fields of any width at any bit offset of a string.
~ O(1) for each operation, plus O(L) to rewrite a string of L bytes that changed
bitfield_ro 6.0.0
= key [GET (encoding offset:integer)*]
- The read-only BITFIELD: GET operations only, allowed on replicas and in read-only scripts.
~ O(1) for each operation
bitop 2.6.0
= operation destkey:key key...
- Combine strings bit by bit (AND, OR, XOR, or NOT of one) and store the result in destkey.
~ O(L), L the bytes of the longest string
bitpos 2.8.7
= key bit:integer [start:integer [end:integer [BYTE|BIT]]]
- The position of the first bit set to 0 or 1 in a string, or in a range of it.
~ O(L), L the bytes read
blmove 6.2.0
= source:key destination:key (LEFT|RIGHT) (LEFT|RIGHT) timeout:double
- LMOVE, waiting up to timeout seconds (0: for ever) for the source list to have an element.
~ O(1)
blmpop 7.0.0
= timeout:double numkeys:integer key... (LEFT|RIGHT) [COUNT count:integer]
- LMPOP, waiting up to timeout seconds (0: for ever) for one of the lists to have an element.
~ O(K + M), K the keys given, M the elements popped
blpop 2.0.0
= key... timeout:double
- Pop the first element of the first non-empty list, waiting up to timeout seconds (0: for ever).
~ O(K), K the keys given
brpop 2.0.0
= key... timeout:double
- Pop the last element of the first non-empty list, waiting up to timeout seconds (0: for ever).
~ O(K), K the keys given
brpoplpush 2.2.0
= source:key destination:key timeout:double
! 6.2.0 BLMOVE source destination RIGHT LEFT timeout
- RPOPLPUSH, waiting up to timeout seconds (0: for ever) for the source list to have an element.
~ O(1)
bzmpop 7.0.0
= timeout:double numkeys:integer key... (MIN|MAX) [COUNT count:integer]
- ZMPOP, waiting up to timeout seconds (0: for ever) for one of the sorted sets to have a member.
~ O(K + M log(N)), K the keys given, M the members popped from N
bzpopmax 5.0.0
= key... timeout:double
- Pop the highest-scored member of the first non-empty sorted set, waiting up to timeout seconds.
~ O(K + log(N)), K the keys given, N the members of the set popped from
bzpopmin 5.0.0
= key... timeout:double
- Pop the lowest-scored member of the first non-empty sorted set, waiting up to timeout seconds.
~ O(K + log(N)), K the keys given, N the members of the set popped from
client 2.4.0
- Commands about client connections (CLIENT HELP lists them).
~ that of the subcommand
client|caching 6.0.0
= (YES|NO)
- In OPTIN or OPTOUT tracking, whether to track the keys the next command reads.
~ O(1)
client|getname 2.6.9
- The name this connection was given with CLIENT SETNAME (nil if none).
~ O(1)
client|getredir 6.0.0
- The client that receives this connection's tracking invalidations: its ID, 0 or -1.
~ O(1)
client|help 5.0.0
- What each CLIENT subcommand does.
~ O(1)
client|id 5.0.0
- This connection's ID.
~ O(1)
client|info 6.2.0
- This connection's line of CLIENT LIST.
~ O(1)
client|kill 2.4.0
= (ip:port|(ID client-id:integer|TYPE (NORMAL|MASTER|SLAVE|REPLICA|PUBSUB)|USER username|ADDR ip:port
= |LADDR ip:port|SKIPME yes/no)...)
- Close the connections of clients found by address, or by ID, type, user and addresses.
~ O(C), C the connected clients
client|list 2.4.0
= [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID client-id:integer...]
- One line of fields (address, name, age, last command...) for each connected client.
~ O(C), C the connected clients
client|no-evict 7.0.0
= (ON|OFF)
- Accepted for compatibility: kvb serve never evicts clients.
~ O(1)
client|no-touch 7.2.0
= (ON|OFF)
- Accepted and ignored: kvb keeps no access times of keys for it to leave alone.
~ O(1)
client|reply 3.2.0
= (ON|OFF|SKIP)
- Stop replies to this connection (OFF), skip the next one (SKIP), or resume them (ON).
~ O(1)
client|setinfo 7.2.0
= (LIB-NAME libname|LIB-VER libver)
- Record the client library's name or version, shown by CLIENT LIST.
~ O(1)
client|setname 2.6.9
= connection-name
- Name this connection (shown by CLIENT LIST); an empty name removes it.
~ O(1)
client|tracking 6.0.0
= (ON|OFF) [REDIRECT client-id:integer] [PREFIX prefix*] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]
- Turn server-assisted client-side caching on or off: invalidation messages for keys read.
~ O(1), O(P) with P prefixes given
client|trackinginfo 6.2.0
- This connection's tracking mode, redirection and prefixes.
~ O(1)
client|unblock 5.0.0
= client-id:integer [TIMEOUT|ERROR]
- End the wait of a client blocked in BLPOP, XREAD BLOCK and the like, as a timeout or an error.
~ O(1)
cluster 3.0.0
- Commands of a cluster node; kvb serve is never one, so each is refused as by a server
- without cluster support.
~ O(1)
cluster|addslots 3.0.0
= slot:integer...
- In a cluster, give hash slots to this node. Refused: kvb serve is never a cluster node.
~ O(1)
cluster|addslotsrange 7.0.0
= (start-slot:integer end-slot:integer)...
- In a cluster, give ranges of hash slots to this node. Refused: not a cluster node.
~ O(1)
cluster|bumpepoch 3.0.0
- In a cluster, raise this node's configuration epoch. Refused: not a cluster node.
~ O(1)
cluster|count-failure-reports 3.0.0
= node-id
- In a cluster, the failure reports about a node. Refused: not a cluster node.
~ O(1)
cluster|countkeysinslot 3.0.0
= slot:integer
- In a cluster, the keys of a hash slot held here. Refused: not a cluster node.
~ O(1)
cluster|delslots 3.0.0
= slot:integer...
- In a cluster, take hash slots from this node. Refused: not a cluster node.
~ O(1)
cluster|delslotsrange 7.0.0
= (start-slot:integer end-slot:integer)...
- In a cluster, take ranges of hash slots from this node. Refused: not a cluster node.
~ O(1)
cluster|failover 3.0.0
= [FORCE|TAKEOVER]
- In a cluster, make this replica take over from its primary. Refused: not a cluster node.
~ O(1)
cluster|flushslots 3.0.0
- In a cluster, forget this node's hash slots. Refused: not a cluster node.
~ O(1)
cluster|forget 3.0.0
= node-id
- In a cluster, drop a node from this node's table. Refused: not a cluster node.
~ O(1)
cluster|getkeysinslot 3.0.0
= slot:integer count:integer
- In a cluster, key names of a hash slot held here. Refused: not a cluster node.
~ O(1)
cluster|help 5.0.0
- In a cluster, what each CLUSTER subcommand does. Refused: not a cluster node.
~ O(1)
cluster|info 3.0.0
- In a cluster, the state of the cluster as this node sees it. Refused: not a cluster node.
~ O(1)
cluster|keyslot 3.0.0
= key:string
- In a cluster, the hash slot of a key. Refused: not a cluster node.
~ O(1)
cluster|links 7.0.0
- In a cluster, this node's links to its peers. Refused: not a cluster node.
~ O(1)
cluster|meet 3.0.0
= ip port:integer [cluster_bus_port:integer]
- In a cluster, join another node. Refused: not a cluster node.
~ O(1)
cluster|myid 3.0.0
- In a cluster, this node's ID. Refused: not a cluster node.
~ O(1)
cluster|nodes 3.0.0
- In a cluster, the nodes this node knows. Refused: not a cluster node.
~ O(1)
cluster|replicas 5.0.0
= node-id
- In a cluster, the replicas of a primary. Refused: not a cluster node.
~ O(1)
cluster|replicate 3.0.0
= node-id
- In a cluster, make this node a replica of a primary. Refused: not a cluster node.
~ O(1)
cluster|reset 3.0.0
= [HARD|SOFT]
- In a cluster, make this node forget the cluster. Refused: not a cluster node.
~ O(1)
cluster|saveconfig 3.0.0
- In a cluster, write this node's cluster configuration to disk. Refused: not a cluster node.
~ O(1)
cluster|set-config-epoch 3.0.0
= config-epoch:integer
- In a cluster, set a new node's configuration epoch. Refused: not a cluster node.
~ O(1)
cluster|setslot 3.0.0
= slot:integer (IMPORTING node-id|MIGRATING node-id|NODE node-id|STABLE)
- In a cluster, move a hash slot between nodes. Refused: not a cluster node.
~ O(1)
cluster|shards 7.0.0
- In a cluster, its shards and their nodes. Refused: not a cluster node.
~ O(1)
cluster|slaves 3.0.0
= node-id
! 5.0.0 CLUSTER REPLICAS node-id
- In a cluster, the replicas of a primary. Refused: not a cluster node.
~ O(1)
cluster|slots 3.0.0
! 7.0.0 CLUSTER SHARDS
- In a cluster, which nodes serve which hash slots. Refused: not a cluster node.
~ O(1)
command 2.8.13
- The description of every command (as COMMAND INFO), or its subcommands (COMMAND HELP).
~ O(C), C the commands
command|count 2.8.13
- How many commands the server has.
~ O(1)
command|docs 7.0.0
= [command-name...]
- The documentation of the given commands, or of all: summary, since, group, complexity, arguments.
~ O(C), C the commands described
command|getkeys 2.8.13
= command arg...
- The keys a call of a command would use.
~ O(A), A the arguments of the call
command|getkeysandflags 7.0.0
= command arg...
- The keys a call of a command would use, each with what the call does to it.
~ O(A), A the arguments of the call
command|help 5.0.0
- What each COMMAND subcommand does.
~ O(1)
command|info 2.8.13
= [command-name...]
- Arity, flags, key positions, categories, tips and key specs of the given commands, or of all.
~ O(C), C the commands described
command|list 7.0.0
= [FILTERBY (MODULE module-name|ACLCAT category|PATTERN pattern:pattern)]
- The names of the commands and subcommands, all or those of an ACL category or a pattern.
~ O(C), C the commands
config 2.0.0
- Commands that read and change the server's settings (CONFIG HELP lists them).
~ that of the subcommand
config|get 2.0.0
= parameter...
- The settings whose names match the given names or glob patterns, with their values.
~ O(P), P the settings
config|help 5.0.0
- What each CONFIG subcommand does.
~ O(1)
config|resetstat 2.0.0
- Zero the counters of INFO stats.
~ O(1)
config|rewrite 2.8.0
- Refused: kvb serve has no configuration file to write.
~ O(1)
config|set 2.0.0
= (parameter value)...
- Change settings while the server runs, all or none of them.
~ O(P), P the settings given
copy 6.2.0
= source:key destination:key [DB destination-db:integer] [REPLACE]
- Copy a key of any type, with its expiry, to a new name (REPLACE: over an existing one).
~ O(N), N the records (elements, fields, members) of the key
dbsize 1.0.0
- How many keys the database holds.
~ O(K), K the keys of the store
decr 1.0.0
= key
- Subtract 1 from the integer stored at a key (0 if missing) and answer the result.
~ O(1)
decrby 1.0.0
= key decrement:integer
- Subtract an integer from the integer stored at a key (0 if missing) and answer the result.
~ O(1)
del 1.0.0
= key...
- Delete keys of any type; answer how many existed.
~ O(N), N the records of the keys deleted
discard 2.0.0
- Drop the commands queued since MULTI and leave the transaction.
~ O(Q), Q the commands queued
dump 2.6.0
= key
- A key's value in Redis's serialized form, for RESTORE here or on redis-server.
~ O(N), N the records of the key
echo 1.0.0
= message
- Answer the message given.
~ O(1)
eval 2.6.0
= script numkeys:integer [key...] [arg...]
- Run a Lua script atomically, with its key names and arguments.
~ that of the script
eval_ro 7.0.0
= script numkeys:integer [key...] [arg...]
- EVAL of a script that only reads.
~ that of the script
evalsha 2.6.0
= sha1 numkeys:integer [key...] [arg...]
- EVAL of a script loaded before, named by its SHA1 digest.
~ that of the script
evalsha_ro 7.0.0
= sha1 numkeys:integer [key...] [arg...]
- EVALSHA of a script that only reads.
~ that of the script
exec 1.2.0
- Run the commands queued since MULTI as one transaction (nil if a watched key changed).
~ that of the commands queued
exists 1.0.0
= key...
- How many of the given keys exist (a key named twice counts twice).
~ O(K), K the keys given
expire 1.0.0
= key seconds:integer [NX|XX|GT|LT]
- Make a key expire after a number of seconds (at once if not positive).
~ O(1)
expireat 1.2.0
= key unix-time-seconds:unix-time [NX|XX|GT|LT]
- Make a key expire at a Unix time in seconds.
~ O(1)
expiretime 7.0.0
= key
- The Unix time in seconds at which a key expires: -1 if never, -2 if there is no key.
~ O(1)
fcall 7.0.0
= function numkeys:integer [key...] [arg...]
- Call a function of a loaded library, with its key names and arguments.
~ that of the function
fcall_ro 7.0.0
= function numkeys:integer [key...] [arg...]
- FCALL of a function flagged no-writes.
~ that of the function
flushall 1.0.0
= [ASYNC|SYNC]
- Delete every Redis key of the store (engine keys written otherwise stay).
~ O(N), N the records of the keys
flushdb 1.0.0
= [ASYNC|SYNC]
- Delete every Redis key of the database (the store has one).
~ O(N), N the records of the keys
function 7.0.0
- Commands that load, list and remove Lua function libraries (FUNCTION HELP lists them).
~ that of the subcommand
function|delete 7.0.0
= library-name
- Remove a function library.
~ O(1)
function|dump 7.0.0
- Every function library in a serialized form for FUNCTION RESTORE.
~ O(F), F the functions
function|flush 7.0.0
= [ASYNC|SYNC]
- Remove every function library.
~ O(F), F the functions
function|help 7.0.0
- What each FUNCTION subcommand does.
~ O(1)
function|kill 7.0.0
- Stop the function running long on this server, if it has written nothing.
~ O(1)
function|list 7.0.0
= [LIBRARYNAME library-name-pattern] [WITHCODE]
- The loaded libraries with their functions, all or those whose name matches, with their code.
~ O(F), F the functions
function|load 7.0.0
= [REPLACE] function-code
- Load a Lua library of functions (REPLACE: over one of the same name); answers its name.
~ O(1), plus compiling the code
function|restore 7.0.0
= serialized-value [FLUSH|APPEND|REPLACE]
- Load libraries from FUNCTION DUMP's output, adding to, replacing or flushing those loaded.
~ O(F), F the functions restored
function|stats 7.0.0
- The function running now, if any, and how many libraries and functions are loaded.
~ O(1)
geoadd 3.2.0
= key [NX|XX] [CH] (longitude:double latitude:double member)...
- Add members at positions (longitude, latitude) to a geo key, a sorted set of geohashes.
~ O(M log(N)), M the members given, N those of the key
geodist 3.2.0
= key member1 member2 [M|KM|FT|MI]
- The distance between two members of a geo key, in meters or the unit given.
~ O(1)
geohash 3.2.0
= key [member...]
- The 11-character geohash of each member's position.
~ O(M), M the members given
geopos 3.2.0
= key [member...]
- The position (longitude, latitude) of each member.
~ O(M), M the members given
georadius 3.2.0
= key longitude:double latitude:double radius:double (M|KM|FT|MI) [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT
= count:integer [ANY]] [ASC|DESC] [STORE key] [STOREDIST key]
! 6.2.0 GEOSEARCH or GEOSEARCHSTORE with FROMLONLAT and BYRADIUS
- The members within a radius of a position, or STORE them in another key.
~ O(N + M log(M)), N the members in the cells searched, M those found
georadius_ro 3.2.10
= key longitude:double latitude:double radius:double (M|KM|FT|MI) [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT
= count:integer [ANY]] [ASC|DESC]
! 6.2.0 GEOSEARCH with FROMLONLAT and BYRADIUS
- GEORADIUS without STORE.
~ O(N + M log(M)), N the members in the cells searched, M those found
georadiusbymember 3.2.0
= key member radius:double (M|KM|FT|MI) [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count:integer [ANY]]
= [ASC|DESC] [STORE key] [STOREDIST key]
! 6.2.0 GEOSEARCH or GEOSEARCHSTORE with FROMMEMBER and BYRADIUS
- The members within a radius of a member's position, or STORE them in another key.
~ O(N + M log(M)), N the members in the cells searched, M those found
georadiusbymember_ro 3.2.10
= key member radius:double (M|KM|FT|MI) [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count:integer [ANY]]
= [ASC|DESC]
! 6.2.0 GEOSEARCH with FROMMEMBER and BYRADIUS
- GEORADIUSBYMEMBER without STORE.
~ O(N + M log(M)), N the members in the cells searched, M those found
geosearch 6.2.0
= key (FROMMEMBER member|FROMLONLAT (longitude:double latitude:double)) ((BYRADIUS radius:double
= (M|KM|FT|MI))|(BYBOX width:double height:double (M|KM|FT|MI))) [ASC|DESC] [COUNT count:integer [ANY]]
= [WITHCOORD] [WITHDIST] [WITHHASH]
- The members of a geo key within a circle or a box around a member or a position.
~ O(N + M log(M)), N the members in the cells searched, M those found
geosearchstore 6.2.0
= destination:key source:key (FROMMEMBER member|FROMLONLAT (longitude:double latitude:double)) ((BYRADIUS
= radius:double (M|KM|FT|MI))|(BYBOX width:double height:double (M|KM|FT|MI))) [ASC|DESC] [COUNT
= count:integer [ANY]] [STOREDIST]
- GEOSEARCH whose result replaces the destination key (STOREDIST: with distances as scores).
~ O(N + M log(M)), N the members in the cells searched, M those found
get 1.0.0
= key
- The string stored at a key, nil if there is none.
~ O(1)
getbit 2.2.0
= key offset:integer
- The bit at an offset of a string (0 past its end).
~ O(1)
getdel 6.2.0
= key
- The string stored at a key, which is deleted.
~ O(1)
getex 6.2.0
= key [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT
= unix-time-milliseconds:unix-time|PERSIST]
- The string stored at a key, setting or removing its expiry on the way.
~ O(1)
getrange 2.4.0
= key start:integer end:integer
- The bytes of a string between two offsets (inclusive, negative from the end).
~ O(L), L the bytes answered
getset 1.0.0
= key value
! 6.2.0 SET key value GET
- Store a string and answer the one it replaced (nil if none); the expiry is removed.
~ O(1)
hdel 2.0.0
= key field...
- Remove fields from a hash; answer how many there were.
~ O(F), F the fields given
hello 6.0.0
= [protover:integer [AUTH (username password)] [SETNAME clientname]]
- Choose RESP2 or RESP3, optionally authenticating and naming the connection; answers server facts.
~ O(1)
hexists 2.0.0
= key field
- Whether a hash has a field (1 or 0).
~ O(1)
hget 2.0.0
= key field
- The value of a field of a hash, nil if there is none.
~ O(1)
hgetall 2.0.0
= key
- Every field of a hash with its value.
~ O(N), N the fields of the hash
hincrby 2.0.0
= key field increment:integer
- Add an integer to the integer value of a field (0 if missing) and answer the result.
~ O(1)
hincrbyfloat 2.6.0
= key field increment:double
- Add a number to the numeric value of a field (0 if missing) and answer the result.
~ O(1)
hkeys 2.0.0
= key
- The fields of a hash.
~ O(N), N the fields of the hash
hlen 2.0.0
= key
- How many fields a hash has.
~ O(1)
hmget 2.0.0
= key field...
- The values of the given fields of a hash (nil for those missing).
~ O(F), F the fields given
hmset 2.0.0
= key (field value)...
! 4.0.0 HSET with several field and value pairs
- Set fields of a hash to values; answers OK.
~ O(F), F the fields given
hrandfield 6.2.0
= key [count:integer [WITHVALUES]]
- Random fields of a hash: count distinct ones, or, if negative, that many drawn with repeats.
~ O(N), N the fields of the hash
hscan 2.8.0
= key cursor:integer [MATCH pattern:pattern] [COUNT count:integer]
- Walk the fields and values of a hash a page at a time, from a cursor.
~ O(C) for each call, C the count; O(N) for a whole walk of N fields
hset 2.0.0
= key (field value)...
- Set fields of a hash to values; answer how many fields were added.
~ O(F), F the fields given
hsetnx 2.0.0
= key field value
- Set a field of a hash only if it is missing (1 if set, 0 if not).
~ O(1)
hstrlen 3.2.0
= key field
- The length of a field's value (0 if missing).
~ O(1)
hvals 2.0.0
= key
- The values of a hash.
~ O(N), N the fields of the hash
incr 1.0.0
= key
- Add 1 to the integer stored at a key (0 if missing) and answer the result.
~ O(1)
incrby 1.0.0
= key increment:integer
- Add an integer to the integer stored at a key (0 if missing) and answer the result.
~ O(1)
incrbyfloat 2.6.0
= key increment:double
- Add a number to the number stored at a key (0 if missing) and answer the result.
~ O(1)
info 1.0.0
= [section...]
- Facts and counters about the server in text sections: all, default or those named.
~ O(1), O(K) with the keyspace section, K the keys
keys 1.0.0
= pattern:pattern
- Every key whose name matches a glob pattern.
~ O(K), K the keys of the store
lastsave 1.0.0
- The Unix time of the last successful save (here, the current time: every write is in the log).
~ O(1)
latency 2.8.13
- Commands of the latency monitor (LATENCY HELP lists them).
~ that of the subcommand
latency|doctor 2.8.13
- A report on the latency events recorded, for people.
~ O(1)
latency|graph 2.8.13
= event
- A text graph of an event's latency samples.
~ O(1)
latency|help 2.8.13
- What each LATENCY subcommand does.
~ O(1)
latency|histogram 7.0.0
= [command...]
- The distribution of the run times of the given commands, or of all.
~ O(C), C the commands reported
latency|history 2.8.13
= event
- The latency samples of an event, with their times.
~ O(1)
latency|latest 2.8.13
- The latest and highest latency sample of each event.
~ O(1)
latency|reset 2.8.13
= [event...]
- Forget the latency samples of the given events, or of all.
~ O(1)
lcs 7.0.0
= key1:key key2:key [LEN] [IDX] [MINMATCHLEN len:integer] [WITHMATCHLEN]
- The longest common subsequence of two strings, its length, or where its matches are.
~ O(L1 * L2), the lengths of the two strings
lindex 1.0.0
= key index:integer
- The element at an index of a list (negative from the end), nil if out of range.
~ O(1)
linsert 2.2.0
= key (BEFORE|AFTER) pivot element
- Insert an element before or after the first one equal to pivot; answer the new length.
~ O(N), N the elements of the list
llen 1.0.0
= key
- How many elements a list has.
~ O(1)
lmove 6.2.0
= source:key destination:key (LEFT|RIGHT) (LEFT|RIGHT)
- Pop an element from one end of a list and push it to an end of another (or the same) list.
~ O(1)
lmpop 7.0.0
= numkeys:integer key... (LEFT|RIGHT) [COUNT count:integer]
- Pop elements from one end of the first non-empty list of those given.
~ O(K + M), K the keys given, M the elements popped
lpop 1.0.0
= key [count:integer]
- Remove and answer the first element of a list, or its first count elements.
~ O(M), M the elements popped
lpos 6.0.6
= key element [RANK rank:integer] [COUNT num-matches:integer] [MAXLEN len:integer]
- The index of an element equal to the one given, or of several (RANK, COUNT, MAXLEN).
~ O(N), N the elements read
lpush 1.0.0
= key element...
- Add elements at the head of a list (the last one given first); answer the new length.
~ O(E), E the elements given
lpushx 2.2.0
= key element...
- LPUSH to a list that exists only; 0 otherwise.
~ O(E), E the elements given
lrange 1.0.0
= key start:integer stop:integer
- The elements of a list between two indexes (inclusive, negative from the end).
~ O(M), M the elements answered
lrem 1.0.0
= key count:integer element
- Remove elements equal to the one given: count from the head, -count from the tail, 0 all.
~ O(N), N the elements of the list
lset 1.0.0
= key index:integer element
- Replace the element at an index of a list.
~ O(1)
ltrim 1.0.0
= key start:integer stop:integer
- Keep only the elements of a list between two indexes.
~ O(R), R the elements removed
memory 4.0.0
- Commands about memory use, here the store's log (MEMORY HELP lists them).
~ that of the subcommand
memory|doctor 4.0.0
- A report on memory use, for people.
~ O(1)
memory|help 4.0.0
- What each MEMORY subcommand does.
~ O(1)
memory|malloc-stats 4.0.0
- The allocator's statistics (none here).
~ O(1)
memory|purge 4.0.0
- Ask the allocator to give memory back (nothing to do here).
~ O(1)
memory|stats 4.0.0
- Figures about the memory and the store's log files.
~ O(1)
memory|usage 4.0.0
= key [SAMPLES count:integer]
- An estimate of the bytes a key's records take in the store's log.
~ O(S), S the records sampled (all with SAMPLES 0)
mget 1.0.0
= key...
- The strings stored at the given keys (nil for those missing or of another type).
~ O(K), K the keys given
monitor 1.0.0
- Stream every command the server runs to this connection, until it closes.
~ O(1)
move 1.0.0
= key db:integer
- Move a key to another database: refused, as the store has only database 0.
~ O(1)
mset 1.0.1
= (key value)...
- Store several strings at once, replacing what the keys held.
~ O(K), K the keys given
msetnx 1.0.1
= (key value)...
- MSET only if none of the keys exists (1 if set, 0 if not).
~ O(K), K the keys given
multi 1.2.0
- Start a transaction: the next commands are queued until EXEC or DISCARD.
~ O(1)
object 2.2.3
- Commands that inspect a key's value (OBJECT HELP lists them).
~ that of the subcommand
object|encoding 2.2.3
= key
- The encoding Redis would use for a key's value now (listpack, intset, hashtable...).
~ O(1), O(N) for a collection of N elements it reads to decide
object|freq 4.0.0
= key
- Refused: access frequencies are counted only under an LFU maxmemory policy.
~ O(1)
object|help 6.2.0
- What each OBJECT subcommand does.
~ O(1)
object|idletime 2.2.3
= key
- The seconds since a key was last used (always 0 here).
~ O(1)
object|refcount 2.2.3
= key
- The reference count of a key's value (always 1 here).
~ O(1)
persist 2.2.0
= key
- Remove a key's expiry (1 if it had one, 0 otherwise).
~ O(1)
pexpire 2.6.0
= key milliseconds:integer [NX|XX|GT|LT]
- Make a key expire after a number of milliseconds (at once if not positive).
~ O(1)
pexpireat 2.6.0
= key unix-time-milliseconds:unix-time [NX|XX|GT|LT]
- Make a key expire at a Unix time in milliseconds.
~ O(1)
pexpiretime 7.0.0
= key
- The Unix time in milliseconds at which a key expires: -1 if never, -2 if there is no key.
~ O(1)
pfadd 2.8.9
= key [element...]
- Count elements into a HyperLogLog (1 if its estimate may have changed, 0 otherwise).
~ O(E), E the elements given
pfcount 2.8.9
= key...
- The estimated number of distinct elements of a HyperLogLog, or of the union of several.
~ O(1) with a cached count of one key, O(K) registers read otherwise
pfmerge 2.8.9
= destkey:key [sourcekey:key...]
- Merge HyperLogLogs into destkey, which then counts the union of their elements.
~ O(K), K the keys given
ping 1.0.0
= [message]
- PONG, or the message given (in a subscribed connection, a pong message).
~ O(1)
psetex 2.6.0
= key milliseconds:integer value
- Store a string that expires after a number of milliseconds.
~ O(1)
psubscribe 2.0.0
= pattern:pattern...
- Receive the messages published to every channel matching the glob patterns given.
~ O(P), P the patterns given
pttl 2.6.0
= key
- The milliseconds a key has left to live: -1 if it never expires, -2 if there is no key.
~ O(1)
publish 2.0.0
= channel message
- Send a message to a channel's subscribers; answer how many received it.
~ O(S + P), S the channel's subscribers, P the patterns subscribed to
pubsub 2.8.0
- Commands about the channels and patterns subscribed to (PUBSUB HELP lists them).
~ that of the subcommand
pubsub|channels 2.8.0
= [pattern:pattern]
- The channels with subscribers, all or those matching a pattern.
~ O(C), C the channels with subscribers
pubsub|help 6.2.0
- What each PUBSUB subcommand does.
~ O(1)
pubsub|numpat 2.8.0
- How many patterns clients subscribe to.
~ O(1)
pubsub|numsub 2.8.0
= [channel...]
- The number of subscribers of each channel given.
~ O(C), C the channels given
pubsub|shardchannels 7.0.0
= [pattern:pattern]
- The shard channels with subscribers, all or those matching a pattern.
~ O(C), C the shard channels with subscribers
pubsub|shardnumsub 7.0.0
= [shardchannel...]
- The number of subscribers of each shard channel given.
~ O(C), C the shard channels given
punsubscribe 2.0.0
= [pattern:pattern...]
- Stop receiving messages for the patterns given, or for all.
~ O(P), P the patterns
quit 1.0.0
- Close the connection once the replies before it are sent.
~ O(1)
randomkey 1.0.0
- A key picked at random, nil if there is none.
~ O(K), K the keys of the store
readonly 3.0.0
- In a cluster, let a replica's connection read. Refused: not a cluster node.
~ O(1)
readwrite 3.0.0
- In a cluster, undo READONLY. Refused: not a cluster node.
~ O(1)
rename 1.0.0
= key newkey:key
- Give a key another name, replacing what newkey held.
~ O(N), N the records of the key (and of what newkey held)
renamenx 1.0.0
= key newkey:key
- RENAME only if newkey does not exist (1 if renamed, 0 if not).
~ O(N), N the records of the key
reset 6.2.0
- Bring the connection back to its state at connect: no transaction, subscription, tracking or name.
~ O(1)
restore 2.6.0
= key ttl:integer serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds:integer] [FREQ frequency:integer]
- Create a key from DUMP's serialized value (redis-server's too), with a TTL or none (0).
~ O(N), N the records of the value
rpop 1.0.0
= key [count:integer]
- Remove and answer the last element of a list, or its last count elements.
~ O(M), M the elements popped
rpoplpush 1.2.0
= source:key destination:key
! 6.2.0 LMOVE source destination RIGHT LEFT
- Pop the last element of a list and push it at the head of another (or the same) list.
~ O(1)
rpush 1.0.0
= key element...
- Add elements at the tail of a list; answer the new length.
~ O(E), E the elements given
rpushx 2.2.0
= key element...
- RPUSH to a list that exists only; 0 otherwise.
~ O(E), E the elements given
sadd 1.0.0
= key member...
- Add members to a set; answer how many were new.
~ O(M), M the members given
save 1.0.0
- Flush the store's log to disk (every write is in it already); answers OK.
~ O(1)
scan 2.8.0
= cursor:integer [MATCH pattern:pattern] [COUNT count:integer] [TYPE type]
- Walk the keys a page at a time, from a cursor, optionally by pattern and type.
~ O(C) for each call, C the count; O(K) for a whole walk of K keys
scard 1.0.0
= key
- How many members a set has.
~ O(1)
script 2.6.0
- Commands about the Lua script cache (SCRIPT HELP lists them).
~ that of the subcommand
script|exists 2.6.0
= sha1...
- Whether each script digest given is in the script cache (1 or 0).
~ O(D), D the digests given
script|flush 2.6.0
= [ASYNC|SYNC]
- Empty the script cache.
~ O(S), S the scripts
script|help 5.0.0
- What each SCRIPT subcommand does.
~ O(1)
script|kill 2.6.0
- Stop the script running long on this server, if it has written nothing.
~ O(1)
script|load 2.6.0
= script
- Put a script in the script cache without running it; answers its SHA1 digest.
~ O(L), L the script's length
sdiff 1.0.0
= key...
- The members of the first set that are in none of the others.
~ O(N), N the members of all the sets
sdiffstore 1.0.0
= destination:key key...
- SDIFF whose result replaces the destination key; answers its size.
~ O(N), N the members of all the sets
select 1.0.0
= index:integer
- Choose the database of the connection: only 0, the store's one.
~ O(1)
set 1.0.0
= key value [NX|XX] [GET] [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT
= unix-time-milliseconds:unix-time|KEEPTTL]
- Store a string at a key, replacing any value, with an expiry, conditions, or the old value back.
~ O(1)
setbit 2.2.0
= key offset:integer value:integer
- Set or clear the bit at an offset of a string (growing it); answer the bit it had.
~ O(1), O(L) to grow a string to L bytes
setex 2.0.0
= key seconds:integer value
- Store a string that expires after a number of seconds.
~ O(1)
setnx 1.0.0
= key value
- Store a string only if the key does not exist (1 if stored, 0 if not).
~ O(1)
setrange 2.2.0
= key offset:integer value
- Overwrite part of a string from an offset (padding with zero bytes); answer its new length.
~ O(L), L the length of the string
shutdown 1.0.0
= [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]
- Stop the server once the store is synced (its client gets no reply).
~ O(C), C the connected clients
sinter 1.0.0
= key...
- The members that are in every one of the sets.
~ O(N * K) at most, N the members of the smallest set, K the sets
sintercard 7.0.0
= numkeys:integer key... [LIMIT limit:integer]
- How many members the sets have in common (counting up to LIMIT if given).
~ O(N * K) at most, N the members of the smallest set, K the sets
sinterstore 1.0.0
= destination:key key...
- SINTER whose result replaces the destination key; answers its size.
~ O(N * K) at most, N the members of the smallest set, K the sets
sismember 1.0.0
= key member
- Whether a member is in a set (1 or 0).
~ O(1)
slowlog 2.2.12
- Commands about the log of slow commands (SLOWLOG HELP lists them).
~ that of the subcommand
slowlog|get 2.2.12
= [count:integer]
- The latest entries of the slow log (10, count, or all with -1).
~ O(E), E the entries answered
slowlog|help 6.2.0
- What each SLOWLOG subcommand does.
~ O(1)
slowlog|len 2.2.12
- How many entries the slow log holds.
~ O(1)
slowlog|reset 2.2.12
- Empty the slow log.
~ O(E), E the entries
smembers 1.0.0
= key
- Every member of a set.
~ O(N), N the members of the set
smismember 6.2.0
= key member...
- Whether each member given is in a set (1 or 0 each).
~ O(M), M the members given
smove 1.0.0
= source:key destination:key member
- Move a member from one set to another (1 if moved, 0 if it was not in the source).
~ O(1)
sort 1.0.0
= key [BY pattern:pattern@1] [LIMIT (offset:integer count:integer)] [GET pattern:pattern@1*]
= [ASC|DESC] [ALPHA]
= [STORE destination:key@2]
- Sort a list, set or sorted set by value or by other keys, answering it or storing it as a list.
~ O(N + M log(M)), N the elements, M those sorted; O(N) with BY nosort
sort_ro 7.0.0
= key [BY pattern:pattern@1] [LIMIT (offset:integer count:integer)] [GET pattern:pattern@1*]
= [ASC|DESC] [ALPHA]
- SORT without STORE.
~ O(N + M log(M)), N the elements, M those sorted; O(N) with BY nosort
spop 1.0.0
= key [count:integer]
- Remove and answer a random member of a set, or count of them.
~ O(N), N the members of the set
spublish 7.0.0
= shardchannel message
- Send a message to a shard channel's subscribers; answer how many received it.
~ O(S), S the shard channel's subscribers
srandmember 1.0.0
= key [count:integer]
- Random members of a set: count distinct ones, or, if negative, that many drawn with repeats.
~ O(N), N the members of the set
srem 1.0.0
= key member...
- Remove members from a set; answer how many there were.
~ O(M), M the members given
sscan 2.8.0
= key cursor:integer [MATCH pattern:pattern] [COUNT count:integer]
- Walk the members of a set a page at a time, from a cursor.
~ O(C) for each call, C the count; O(N) for a whole walk of N members
ssubscribe 7.0.0
= shardchannel...
- Receive the messages published to the shard channels given.
~ O(C), C the shard channels given
strlen 2.2.0
= key
- The length of the string stored at a key (0 if missing).
~ O(1)
subscribe 2.0.0
= channel...
- Receive the messages published to the channels given.
~ O(C), C the channels given
substr 1.0.0
= key start:integer end:integer
! 2.0.0 GETRANGE key start end
- GETRANGE under its old name.
~ O(L), L the bytes answered
sunion 1.0.0
= key...
- The members that are in any of the sets.
~ O(N), N the members of all the sets
sunionstore 1.0.0
= destination:key key...
- SUNION whose result replaces the destination key; answers its size.
~ O(N), N the members of all the sets
sunsubscribe 7.0.0
= [shardchannel...]
- Stop receiving messages for the shard channels given, or for all.
~ O(C), C the shard channels
swapdb 4.0.0
= index1:integer index2:integer
- Swap two databases: only 0 with itself (a no-op), as the store has only database 0.
~ O(1)
time 2.6.0
- The server's clock: Unix time in seconds and the microseconds past it.
~ O(1)
touch 3.2.1
= key...
- How many of the given keys exist (their access time is not kept).
~ O(K), K the keys given
ttl 1.0.0
= key
- The seconds a key has left to live: -1 if it never expires, -2 if there is no key.
~ O(1)
type 1.0.0
= key
- The type of a key's value: string, list, set, zset, hash, stream, or none.
~ O(1)
unlink 4.0.0
= key...
- DEL (the records are deleted at once here too).
~ O(N), N the records of the keys deleted
unsubscribe 2.0.0
= [channel...]
- Stop receiving messages for the channels given, or for all.
~ O(C), C the channels
unwatch 2.2.0
- Forget the keys WATCH named.
~ O(1)
wait 3.0.0
= numreplicas:integer timeout:integer
- Wait for replicas to acknowledge the writes so far: there are none, so 0 (after the timeout).
~ O(1)
watch 2.2.0
= key...
- Make the next EXEC fail if any of these keys changes before it.
~ O(K), K the keys given
xack 5.0.0
= key group id...
- Acknowledge entries a consumer group delivered, removing them from its pending list.
~ O(I), I the IDs given
xadd 5.0.0
= key [NOMKSTREAM] [(MAXLEN|MINID) ["="|"~"] threshold [LIMIT count:integer]] ("*"|id) (field value)...
- Append an entry to a stream (* for a new ID), optionally trimming it; answers the entry's ID.
~ O(1), plus O(T) for T entries trimmed
xautoclaim 6.2.0
= key group consumer min-idle-time start [COUNT count:integer] [JUSTID]
- Give a consumer the pending entries idle for long enough, from an ID on; answers the next one.
~ O(C), C the count
xclaim 5.0.0
= key group consumer min-idle-time id... [IDLE ms:integer] [TIME unix-time-milliseconds:unix-time]
= [RETRYCOUNT count:integer] [FORCE] [JUSTID] [LASTID lastid]
- Give a consumer pending entries of other consumers idle for long enough.
~ O(I), I the IDs given
xdel 5.0.0
= key id...
- Remove entries from a stream; answer how many there were.
~ O(I), I the IDs given
xgroup 5.0.0
- Commands that manage consumer groups (XGROUP HELP lists them).
~ that of the subcommand
xgroup|create 5.0.0
= key group (id|"$") [MKSTREAM] [ENTRIESREAD entries-read:integer]
- Create a consumer group reading a stream from an ID ($: new entries only).
~ O(1)
xgroup|createconsumer 6.2.0
= key group consumer
- Add a consumer to a group (1 if new, 0 if it was there).
~ O(1)
xgroup|delconsumer 5.0.0
= key group consumer
- Remove a consumer from a group; answer how many entries it had pending.
~ O(P), P the consumer's pending entries
xgroup|destroy 5.0.0
= key group
- Remove a consumer group (1 if it existed, 0 otherwise).
~ O(P), P the group's pending entries
xgroup|help 5.0.0
- What each XGROUP subcommand does.
~ O(1)
xgroup|setid 5.0.0
= key group (id|"$") [ENTRIESREAD entries-read:integer]
- Set the ID after which a group reads new entries.
~ O(1)
xinfo 5.0.0
- Commands that describe streams and their groups (XINFO HELP lists them).
~ that of the subcommand
xinfo|consumers 5.0.0
= key group
- The consumers of a group, with their pending counts and idle times.
~ O(C), C the consumers
xinfo|groups 5.0.0
= key
- The consumer groups of a stream, with their consumers, pending entries and positions.
~ O(G), G the groups
xinfo|help 5.0.0
- What each XINFO subcommand does.
~ O(1)
xinfo|stream 5.0.0
= key [FULL ([COUNT count:integer])]
- Facts about a stream (length, first and last entries, groups), or everything with FULL.
~ O(1), O(N) with FULL, N the entries and pending entries answered
xlen 5.0.0
= key
- How many entries a stream has.
~ O(1)
xpending 5.0.0
= key group [[IDLE min-idle-time:integer] start end count:integer [consumer]]
- A group's pending entries: their count and range by consumer, or those in an ID range.
~ O(P), P the pending entries read
xrange 5.0.0
= key start end [COUNT count:integer]
- The entries of a stream between two IDs (- and + for its ends, ( to exclude one), oldest first.
~ O(M), M the entries answered
xread 5.0.0
= [COUNT count:integer] [BLOCK milliseconds:integer] STREAMS (key... id...)
- The entries after the given IDs of each stream ($: new ones only), waiting with BLOCK.
~ O(K + M), K the streams, M the entries answered
xreadgroup 5.0.0
= GROUP (group consumer) [COUNT count:integer] [BLOCK milliseconds:integer] [NOACK] STREAMS (key... id...)
- Entries delivered to a consumer of a group: new ones (>) or its pending ones, waiting with BLOCK.
~ O(K + M), K the streams, M the entries answered
xrevrange 5.0.0
= key end start [COUNT count:integer]
- XRANGE newest first: the end ID comes first.
~ O(M), M the entries answered
xsetid 5.0.0
= key last-id [ENTRIESADDED entries-added:integer] [MAXDELETEDID max-deleted-id]
- Set a stream's last ID (and its counters), as replicas and AOF rewrites do.
~ O(1)
xtrim 5.0.0
= key (MAXLEN|MINID) ["="|"~"] threshold [LIMIT count:integer]
- Remove the oldest entries of a stream down to a length or up to an ID; answer how many.
~ O(T), T the entries removed
zadd 1.2.0
= key [NX|XX] [GT|LT] [CH] [INCR] (score:double member)...
- Add members with scores to a sorted set, or change their scores; answer how many were added.
~ O(M log(N)), M the members given, N those of the set
zcard 1.2.0
= key
- How many members a sorted set has.
~ O(1)
zcount 2.0.0
= key min:double max:double
- How many members have a score between two bounds.
~ O(log(N) + M), M the members in the range
zdiff 6.2.0
= numkeys:integer key... [WITHSCORES]
- The members of the first sorted set that are in none of the others.
~ O(N log(N)), N the members of all the sets
zdiffstore 6.2.0
= destination:key numkeys:integer key...
- ZDIFF whose result replaces the destination key; answers its size.
~ O(N log(N)), N the members of all the sets
zincrby 1.2.0
= key increment:double member
- Add to a member's score (0 if missing) and answer the new score.
~ O(log(N)), N the members of the set
zinter 6.2.0
= numkeys:integer key... [WEIGHTS weight:double...] [AGGREGATE (SUM|MIN|MAX)] [WITHSCORES]
- The members in every one of the sorted sets, their scores weighted and combined.
~ O(N log(N)), N the members of all the sets
zintercard 7.0.0
= numkeys:integer key... [LIMIT limit:integer]
- How many members the sorted sets have in common (counting up to LIMIT if given).
~ O(N * K) at most, N the members of the smallest set, K the sets
zinterstore 2.0.0
= destination:key numkeys:integer key... [WEIGHTS weight:double...] [AGGREGATE (SUM|MIN|MAX)]
- ZINTER whose result replaces the destination key; answers its size.
~ O(N log(N)), N the members of all the sets
zlexcount 2.8.9
= key min max
- How many members lie between two names, in a sorted set whose scores are all equal.
~ O(log(N) + M), M the members in the range
zmpop 7.0.0
= numkeys:integer key... (MIN|MAX) [COUNT count:integer]
- Pop the lowest or highest members of the first non-empty sorted set given.
~ O(K + M log(N)), K the keys given, M the members popped from N
zmscore 6.2.0
= key member...
- The score of each member given (nil for those missing).
~ O(M), M the members given
zpopmax 5.0.0
= key [count:integer]
- Remove and answer the highest-scored member of a sorted set, or count of them.
~ O(M log(N)), M the members popped from N
zpopmin 5.0.0
= key [count:integer]
- Remove and answer the lowest-scored member of a sorted set, or count of them.
~ O(M log(N)), M the members popped from N
zrandmember 6.2.0
= key [count:integer [WITHSCORES]]
- Random members of a sorted set: count distinct ones, or, if negative, that many with repeats.
~ O(N), N the members of the set
zrange 1.2.0
= key start stop [BYSCORE|BYLEX] [REV] [LIMIT (offset:integer count:integer)] [WITHSCORES]
- The members of a sorted set in a range of ranks, scores (BYSCORE) or names (BYLEX).
~ O(S + M), S the members skipped from the nearer end or to the offset, M those answered
zrangebylex 2.8.9
= key min max [LIMIT (offset:integer count:integer)]
! 6.2.0 ZRANGE key min max BYLEX
- The members between two names, in a sorted set whose scores are all equal.
~ O(log(N) + S + M), S the members skipped to the offset, M those answered
zrangebyscore 1.0.5
= key min:double max:double [WITHSCORES] [LIMIT (offset:integer count:integer)]
! 6.2.0 ZRANGE key min max BYSCORE
- The members with a score between two bounds, lowest first.
~ O(log(N) + S + M), S the members skipped to the offset, M those answered
zrangestore 6.2.0
= dst:key src:key min max [BYSCORE|BYLEX] [REV] [LIMIT (offset:integer count:integer)]
- ZRANGE whose result replaces the destination key; answers its size.
~ O(S + M log(M)), S the members skipped, M those stored
zrank 2.0.0
= key member [WITHSCORE]
- The rank of a member, 0 for the lowest score (WITHSCORE: with its score).
~ O(N), N the members of the set
zrem 1.2.0
= key member...
- Remove members from a sorted set; answer how many there were.
~ O(M log(N)), M the members given, N those of the set
zremrangebylex 2.8.9
= key min max
- Remove the members between two names, in a sorted set whose scores are all equal.
~ O(log(N) + M), M the members removed
zremrangebyrank 2.0.0
= key start:integer stop:integer
- Remove the members in a range of ranks.
~ O(S + M), S the members skipped, M those removed
zremrangebyscore 1.2.0
= key min:double max:double
- Remove the members with a score between two bounds.
~ O(log(N) + M), M the members removed
zrevrange 1.2.0
= key start:integer stop:integer [WITHSCORES]
! 6.2.0 ZRANGE key start stop REV
- The members in a range of ranks, counted from the highest score.
~ O(S + M), S the members skipped from the nearer end, M those answered
zrevrangebylex 2.8.9
= key max min [LIMIT (offset:integer count:integer)]
! 6.2.0 ZRANGE key max min BYLEX REV
- ZRANGEBYLEX from the highest name down: the upper bound comes first.
~ O(log(N) + S + M), S the members skipped to the offset, M those answered
zrevrangebyscore 2.2.0
= key max:double min:double [WITHSCORES] [LIMIT (offset:integer count:integer)]
! 6.2.0 ZRANGE key max min BYSCORE REV
- ZRANGEBYSCORE from the highest score down: the upper bound comes first.
~ O(log(N) + S + M), S the members skipped to the offset, M those answered
zrevrank 2.0.0
= key member [WITHSCORE]
- The rank of a member, 0 for the highest score (WITHSCORE: with its score).
~ O(N), N the members of the set
zscan 2.8.0
= key cursor:integer [MATCH pattern:pattern] [COUNT count:integer]
- Walk the members and scores of a sorted set a page at a time, from a cursor.
~ O(C) for each call, C the count; O(N) for a whole walk of N members
zscore 1.2.0
= key member
- The score of a member, nil if it is not in the set.
~ O(1)
zunion 6.2.0
= numkeys:integer key... [WEIGHTS weight:double...] [AGGREGATE (SUM|MIN|MAX)] [WITHSCORES]
- The members in any of the sorted sets, their scores weighted and combined.
~ O(N log(N)), N the members of all the sets
zunionstore 2.0.0
= destination:key numkeys:integer key... [WEIGHTS weight:double...] [AGGREGATE (SUM|MIN|MAX)]
- ZUNION whose result replaces the destination key; answers its size.
~ O(N log(N)), N the members of all the sets
"""
