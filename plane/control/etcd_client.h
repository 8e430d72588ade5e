// etcd::Client: an etcd v3 client on the control loop, speaking etcd's HTTP/JSON gateway
// (grpc-gateway: POST /v3/kv/*, /v3/lease/*, /v3/watch; keys and values base64, int64 fields
// as JSON strings) over our own HTTP/1.1 on TcpConn. Plain HTTP only: etcd's client URLs
// without TLS (the endpoints are IP:PORT; no DNS). Owned by its user (the store / registry
// backends); Loop thread only (the control loop).
//
// Connections: unary calls reuse idle keep-alive connections (a few per endpoint); each watch
// has a connection of its own. Endpoints are tried round robin: a call whose connection
// cannot be made (refused, reset, or not connected within the request timeout) moves on to
// the next endpoint, so a 3-member cluster answers with one member down. A call that timed out
// after its request was sent is NOT retried (it may have been applied): it fails Unavailable,
// and the next call starts at the next endpoint.
//
// Lifetime: every callback runs later on the loop, never inside the call that started it, and
// exactly once unless the Client is destroyed first. Destroying the Client drops the callbacks of
// calls still pending silently (they never run); a callback may destroy the Client. Destroying a
// Watch cancels it; its callbacks never run afterwards, and a callback may destroy its own Watch. A
// Watch needs nothing of its Client once made: it may outlive it.
//
// A dead watch stream: a stream that ends or breaks (etcd stopped, the connection reset) is
// reported at once as Unavailable. A peer that vanishes without a FIN or RST (a host that
// died, a cut cable) is found by TCP keepalive on every connection: the first probe after
// 5 s idle, then every 2 s, dead after 3 missed (≈ 11 s), and TCP_USER_TIMEOUT for unacked
// writes. etcd 3.4's progress notifications (requested) come every 10 minutes only, too
// rarely to serve as a heartbeat; Watch::last_activity_ms() tells an owner when bytes last
// arrived, for one that wants its own policy.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/json.h"
#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/loop/address.h"
#include "core/loop/loop.h"

namespace meshbox::control::etcd {

struct KeyValue {
  std::string key, value;
  int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
};

struct Event {
  enum class Type { Put, Delete };
  Type type = Type::Put;
  KeyValue kv;  // Delete: key and mod_revision only
};

/// One comparison of a txn (etcd's Compare): `target` of [key, range_end) `result` `number`
/// (Version, Create, Mod revisions; Lease id) or `value` (Value).
struct Compare {
  enum class Target { Version, Create, Mod, Value, Lease };
  enum class Result { Equal, Greater, Less, NotEqual };
  Target target = Target::Mod;
  Result result = Result::Equal;
  std::string key, range_end;
  int64_t number = 0;
  std::string value;
};

/// One operation of a txn branch.
struct Op {
  enum class Type { Put, Delete };
  Type type = Type::Put;
  std::string key, value, range_end;  // range_end: Delete only
  int64_t lease = 0;                  // Put only
};

struct RangeResult {
  int64_t revision = 0;  // the store's revision when the range was read (header.revision)
  std::vector<KeyValue> kvs;
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;
};

struct Lease {
  int64_t id = 0;
  int64_t ttl = 0;  // seconds, as granted
};

/// Why a watch ended. Unavailable: the stream broke or could not be opened (re-watch from the
/// last revision seen + 1). compacted(): etcd compacted past the start revision (Code::Conflict;
/// the caller must resync with a range, then watch from its revision + 1). Anything else
/// (Code::Io): etcd refused or sent something unreadable.
struct WatchError {
  Status status;
  int64_t compact_revision = 0;
  bool compacted() const { return compact_revision > 0; }
};

struct Options {
  std::vector<loop::Address> endpoints;  // etcd client URLs' IP:PORT, at least one
  uint64_t request_timeout_ms = 5000;    // per unary call attempt, connect included
  size_t max_idle_per_endpoint = 4;      // keep-alive connections kept for reuse
};

class Watch;

class Client : NonCopyable {
 public:
  Client(loop::Loop& loop, Options options);
  ~Client();

  // Unary calls. Errors: Code::Unavailable (no endpoint answered, the connection was lost,
  // the timeout passed), InvalidArgument / NotFound / Io for an error reply from etcd (its
  // message), Io for a reply that is not what the gateway sends.

  /// Keys in [key, range_end); range_end "" = just `key`, prefix_end(p) = every key under p.
  void range(std::string key, std::string range_end, std::function<void(Result<RangeResult>)> done);
  /// Writes `key`; lease 0 = none. Gives the new revision.
  void put(std::string key, std::string value, int64_t lease,
           std::function<void(Result<int64_t>)> done);
  /// If every compare holds, runs `success`, else `failure`.
  void txn(std::vector<Compare> compares, std::vector<Op> success, std::vector<Op> failure,
           std::function<void(Result<TxnResult>)> done);
  /// Deletes [key, range_end); gives the number of keys deleted.
  void delete_range(std::string key, std::string range_end,
                    std::function<void(Result<int64_t>)> done);
  void lease_grant(int64_t ttl_s, std::function<void(Result<Lease>)> done);
  /// One keepalive: gives the lease's new TTL, or 0 when the lease has expired (or never was).
  void lease_keepalive(int64_t id, std::function<void(Result<int64_t>)> done);
  void lease_revoke(int64_t id, std::function<void(Status)> done);
  /// Compacts the history up to `revision` (tests, maintenance). Gives nothing back.
  void compact(int64_t revision, std::function<void(Status)> done);

  /// Watches [key, range_end) from `start_revision` (0 = from now). `on_events` gets each
  /// batch in order with the header revision; a progress notification gives an empty batch.
  /// `on_error` ends the watch (see WatchError); nothing is delivered after it.
  std::unique_ptr<Watch> watch(std::string key, std::string range_end, int64_t start_revision,
                               std::function<void(std::vector<Event>, int64_t)> on_events,
                               std::function<void(WatchError)> on_error);

  /// etcd's range_end for "every key that starts with `prefix`": the prefix with its last
  /// byte below 0xff incremented (bytes 0xff after it dropped); "\0" (every key) when there is
  /// no such byte.
  static std::string prefix_end(std::string_view prefix);

  const Options& options() const { return options_; }

 private:
  friend class Watch;
  class Conn;
  class Call;
  using CallPtr = std::unique_ptr<Call>;

  /// Sends `body` to `path`; `done` gets the reply's JSON (a 200 whose body parsed) or an error.
  void call(std::string path, std::string body, std::function<void(Result<json::Value>)> done);
  void start_attempt(Call& c);
  /// Ends `c`: its connection parked or dropped, the call destroyed later, then `done` run.
  void finish(Call& c, Result<json::Value> r, bool reusable);
  /// Keeps a connection whose exchange ended cleanly for the next call to `endpoint`.
  void park(size_t endpoint, std::unique_ptr<Conn> conn);
  std::unique_ptr<Conn> take_idle(size_t endpoint);
  /// Runs `fn` on the next iteration unless the Client is gone by then.
  void soon(std::function<void()> fn);

  loop::Loop& loop_;
  Options options_;
  size_t current_ = 0;  // the endpoint calls start with
  std::list<CallPtr> calls_;
  std::vector<std::vector<std::unique_ptr<Conn>>> idle_;  // per endpoint
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

/// A live watch (see Client::watch). Loop thread only; destroy it to cancel.
class Watch : NonCopyable {
 public:
  ~Watch();
  /// The loop time (ms) bytes last arrived on the stream (or it was opened).
  uint64_t last_activity_ms() const;
  /// The last revision delivered (events or progress); 0 before any.
  int64_t revision() const;

 private:
  friend class Client;
  class Stream;
  explicit Watch(std::unique_ptr<Stream> s);
  std::unique_ptr<Stream> stream_;
};

}  // namespace meshbox::control::etcd
