// Shadow: one mirrored request (Istio's mirror, Envoy's request mirroring). A copy of the
// request — its head with the Host given a "-shadow" suffix, then its body as it streams — goes
// to the mirror cluster; the answer is read and thrown away. Fire and forget: a shadow never
// slows or fails the request it copies. It gives up (closes its connection) rather than
// buffer: when its upstream cannot take the body as fast as the client sends it, when the
// cluster has no endpoint or is at its connection limit, or when it times out.
//
// Lifetime: the HttpConnection that started it feeds it and then detaches; the shadow deletes
// itself once detached and its exchange is over. Tracked by the worker (drain, shutdown).
// Loop thread only.
#pragma once

#include <string>
#include <string_view>

#include "core/loop/timer.h"
#include "plane/data/conn_pool.h"
#include "plane/data/worker.h"

namespace meshbox::data {

class Shadow : public ActiveConnection, UpstreamClient {
 public:
  /// Starts the copy: `head` is the serialized request head for the mirror. Null if it cannot
  /// start (no endpoint, a limit reached); the request goes on without it. `identity`: the
  /// listener's mesh_client (mTLS to mesh endpoints).
  static Shadow* start(Worker& worker, ClusterStatePtr cluster, std::string_view method,
                       std::string_view head, bool chunked, uint64_t timeout_ms,
                       const tls::TlsContextConstPtr& identity = {});

  /// A piece of the request body.
  void body(const char* data, size_t len);
  /// The request is complete (`done`), or was abandoned: either way the caller lets go of the
  /// shadow, which finishes its exchange (or gives up, if the body was cut short).
  void detach(bool done);

  void drain() override { abort(); }  // a copy is not worth a slower shutdown
  void abort() override;

 private:
  Shadow(Worker& worker, ClusterStatePtr cluster, bool chunked, uint64_t timeout_ms);

  void on_upstream_head(http::ResponseHead&) override {}
  void on_upstream_body(const char*, size_t) override {}
  void on_upstream_complete() override;
  void on_upstream_failure(UpstreamFailure, bool) override { give_up(); }
  void on_upstream_upgrade(const char*, size_t) override { give_up(); }
  void on_upstream_drained() override {}

  void give_up();
  void finish();

  Worker& worker_;
  ClusterStatePtr cluster_;
  ConnPool* pool_ = nullptr;
  UpstreamConn* up_ = nullptr;
  loop::Timer timer_;
  bool chunked_ = false;
  bool request_done_ = false;
  bool response_done_ = false;
  bool attached_ = true;
  bool finished_ = false;
};

}  // namespace meshbox::data
