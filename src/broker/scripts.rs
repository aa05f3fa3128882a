//! Redis key names and the Lua scripts that keep cross-node presence and
//! socket counts consistent. Each script runs atomically on the Redis
//! server, so two nodes changing the same user at once cannot both decide
//! "first socket" or both miss "last socket".
//!
//! One invariant makes every crash sweepable: a node's presence hash is only
//! ever written by a script that, in the same step, puts the node in `nodes`
//! and gives it a live heartbeat key if it had none ([`ONLINE`],
//! [`RESTORE`]); `nodes` loses a node only together with its presence
//! ([`SWEEP`]). So whenever Redis holds presence of a node, the sweepers
//! know the node, and its presence goes once its heartbeat lapses — even
//! for a node that wrote presence right after Redis came back empty and
//! died before its next heartbeat.
//!
//! Layout (all under `vridge:`):
//! - `node:{node}:alive` — a string with a TTL, refreshed by the node's
//!   heartbeat; its absence means the node is gone.
//! - `nodes` — a set of node ids that may hold presence, for the sweeper.
//! - `node:{node}:presence` — hash `"{project}:{user}"` → sockets-opened
//!   count (0/1 per room lifetime), what this node contributes.
//! - `presence:{project}` — hash `user` → number of nodes where the user is
//!   online; a user is online in the project while the field exists.
//! - `sockets:{user}` — hash `node` → sockets the user holds on that node.

use super::envelope::NodeId;
use vridge_protocol::{ProjectId, UserId};

pub const NODES: &str = "vridge:nodes";
pub const PRESENCE_PREFIX: &str = "vridge:presence:";
pub const NODE_PREFIX: &str = "vridge:node:";

pub fn alive_key(node: NodeId) -> String {
    format!("{NODE_PREFIX}{node}:alive")
}

pub fn node_presence_key(node: NodeId) -> String {
    format!("{NODE_PREFIX}{node}:presence")
}

pub fn presence_key(project: ProjectId) -> String {
    format!("{PRESENCE_PREFIX}{project}")
}

pub fn presence_field(project: ProjectId, user: UserId) -> String {
    format!("{project}:{user}")
}

pub fn sockets_key(user: UserId) -> String {
    format!("vridge:sockets:{user}")
}

/// Refreshes a node's heartbeat and (re-)registers it for sweeping, in one
/// step. KEYS: node:{n}:alive, nodes. ARGV: node id, TTL in ms. Returns 1
/// when the previous heartbeat was still alive, 0 when it was gone (first
/// beat, Redis lost its data, or the node was swept).
pub const BEAT: &str = r#"
local previous = redis.call('SET', KEYS[1], '1', 'PX', ARGV[2], 'GET')
redis.call('SADD', KEYS[2], ARGV[1])
if previous then return 1 end
return 0
"#;

/// KEYS: presence:{p}, node:{n}:presence, node:{n}:alive, nodes.
/// ARGV: "{p}:{u}", u, node id, TTL in ms. Registers the node (see the
/// module docs), then counts the user. Returns `{nodes, lapsed}`: the number
/// of nodes where the user is now online (1 = first), and 1 when the node's
/// heartbeat key was gone (this script started it: the node must restore
/// the rest of its presence).
pub const ONLINE: &str = r#"
local lapsed = 0
if redis.call('SET', KEYS[3], '1', 'PX', ARGV[4], 'NX') then lapsed = 1 end
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return {redis.call('HINCRBY', KEYS[1], ARGV[2], 1), lapsed}
"#;

/// Re-registers a user this node holds, unless already counted (after Redis
/// lost its data, or swept this node while it could not heartbeat).
/// KEYS/ARGV as [`ONLINE`]. Returns `{-1, lapsed}` when already counted,
/// else as ONLINE.
pub const RESTORE: &str = r#"
local lapsed = 0
if redis.call('SET', KEYS[3], '1', 'PX', ARGV[4], 'NX') then lapsed = 1 end
redis.call('SADD', KEYS[4], ARGV[3])
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {-1, lapsed} end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return {redis.call('HINCRBY', KEYS[1], ARGV[2], 1), lapsed}
"#;

/// KEYS: presence:{p}, node:{n}:presence. ARGV: "{p}:{u}", u.
/// Returns the nodes where the user is still online (0 = last socket gone).
/// When this node had not counted the user (Redis lost it before the node
/// restored it, or counting failed), nothing changes and the answer is the
/// nodes that do count them: 0 still means nobody else holds them, and the
/// leave the other nodes' members are owed goes out.
pub const OFFLINE: &str = r#"
local n = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
if n < 0 then return tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0') end
local g = redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
if g <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[2])
  return 0
end
return g
"#;

/// Removes a node that is no longer alive: subtracts its presence from every
/// project and forgets it. KEYS: node:{n}:presence, nodes, node:{n}:alive.
/// ARGV: node id, presence key prefix. Returns the "{p}:{u}" fields whose
/// user went offline everywhere. Does nothing while the node is alive, so a
/// heartbeat racing the sweep wins.
pub const SWEEP: &str = r#"
if redis.call('EXISTS', KEYS[3]) == 1 then return {} end
local fields = redis.call('HGETALL', KEYS[1])
local gone = {}
for i = 1, #fields, 2 do
  local f = fields[i]
  local c = tonumber(fields[i + 1])
  local sep = string.find(f, ':', 1, true)
  if sep then
    local gk = ARGV[2] .. string.sub(f, 1, sep - 1)
    local u = string.sub(f, sep + 1)
    local g = redis.call('HINCRBY', gk, u, -c)
    if g <= 0 then
      redis.call('HDEL', gk, u)
      table.insert(gone, f)
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return gone
"#;

/// Takes one socket slot for a user unless they hold `max` across live
/// nodes. Slots of nodes whose alive key is gone are dropped on the way, so
/// a crashed node's sockets stop counting once its heartbeat lapses.
/// KEYS: sockets:{u}. ARGV: node, max, node key prefix. Returns 1 or 0.
pub const SOCKET_ACQUIRE: &str = r#"
local all = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #all, 2 do
  local node = all[i]
  if node == ARGV[1] or redis.call('EXISTS', ARGV[3] .. node .. ':alive') == 1 then
    total = total + tonumber(all[i + 1])
  else
    redis.call('HDEL', KEYS[1], node)
  end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
"#;

/// Gives a slot back. KEYS: sockets:{u}. ARGV: node.
pub const SOCKET_RELEASE: &str = r#"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
"#;
