// Tunnel: bytes both ways between two TCP connections, with backpressure (a side stops
// reading while the other's output is above its high watermark) and half-close (a FIN from
// one side is passed on after its bytes; the tunnel ends when both directions are done).
// Used by TCP listeners (the L4 proxy) and by HTTP connections after an Upgrade (101) or a
// CONNECT. Loop thread only; owned by its Worker's connection list.
#pragma once

#include "core/base/buffer.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/timer.h"
#include "plane/data/worker.h"

namespace meshbox::data {

class Tunnel : public ActiveConnection {
 public:
  /// TCP listener: connects to the cluster and pipes `down` to it. Null if the cluster has no
  /// endpoint (`down` is then closed).
  static Tunnel* proxy(Worker& worker, const ListenerSpec& listener, ClusterState& cluster,
                       loop::TcpConnPtr down);
  /// Takes over two connected sockets (after an HTTP upgrade). `to_up`/`to_down` are bytes
  /// already read that belong to the other side. The worker tracks the new tunnel.
  static void splice(Worker& worker, loop::TcpConnPtr down, loop::TcpConnPtr up, Buffer to_up,
                     Buffer to_down, uint64_t idle_timeout_ms);

  void drain() override {}  // a tunnel has no request boundary; it ends with the deadline
  void abort() override { close(); }

 private:
  struct Side : loop::TcpConnCallbacks {
    Tunnel* tunnel = nullptr;
    Side* peer = nullptr;
    loop::TcpConnPtr conn;
    bool eof = false;       // this side sent FIN
    bool finished = false;  // FIN passed on to the peer and flushed
    void on_data(const char* data, size_t len) override;
    void on_eof() override;
    void on_error(int err) override;
    void on_connected() override;
    void on_drained() override;
    void on_flushed() override;
  };

  Tunnel(Worker& worker, loop::TcpConnPtr down, loop::TcpConnPtr up, uint64_t idle_timeout_ms);
  void touch() { timer_.start(idle_timeout_ms_); }
  void close();

  Worker& worker_;
  Side down_, up_;
  loop::Timer timer_;  // connect timeout, then idle timeout
  uint64_t idle_timeout_ms_;
  bool closed_ = false;
};

}  // namespace meshbox::data
