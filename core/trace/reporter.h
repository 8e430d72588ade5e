// Reporter: sends finished spans to a Zipkin v2 collector (POST /api/v2/spans, a JSON array;
// Jaeger and the OpenTelemetry collector take it too) in batches, from one Loop. One per loop
// — each worker has its own — so nothing is locked. Loop thread only, except stats(), whose
// counters any thread may read (relaxed atomics).
//
// report() never blocks and never waits: the span is encoded into a bounded buffer at once, and
// past the bound (max_buffered_spans or max_buffered_bytes) it is dropped and counted. A batch
// goes out when batch_spans are buffered or flush_interval_ms after the first span of a batch,
// over one keep-alive HTTP/1.1 connection, with at most one request in flight; spans reported
// meanwhile wait in the buffer. A failed batch (connect error, reset, timeout, a non-2xx
// status) is dropped and counted, and the next one waits out a backoff (doubling from
// min_backoff_ms to max_backoff_ms; a success resets it). A request that fails on a reused
// keep-alive connection before any response byte (the collector closed it while idle) is sent
// once more on a new connection.
//
// The collector's address is resolved by the caller (host names on the control loop: a worker
// never resolves), see parse_collector_url().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/http/parser.h"
#include "core/loop/address.h"
#include "core/loop/loop.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/timer.h"
#include "core/trace/span.h"

namespace meshbox::trace {

/// The parts of a collector URL `http://host[:port][/path]`: no port means 80, no path (or
/// "/") means /api/v2/spans. Only http is supported. Nothing is resolved.
struct CollectorUrl {
  std::string host;  // a name or an IP (IPv6 without brackets)
  uint16_t port = 80;
  std::string path = "/api/v2/spans";
  /// The Host header: host, with :port unless it is 80.
  std::string authority() const;
};
Result<CollectorUrl> parse_collector_url(std::string_view url);

struct ReporterOptions {
  loop::Address collector;  // resolved
  std::string host;         // the Host header; empty: the collector's address
  std::string path = "/api/v2/spans";
  size_t max_buffered_spans = 1000;
  size_t max_buffered_bytes = 4 * 1024 * 1024;
  size_t batch_spans = 100;
  uint64_t flush_interval_ms = 1000;
  uint64_t timeout_ms = 5000;  // of one request, connect included
  uint64_t min_backoff_ms = 1000;
  uint64_t max_backoff_ms = 30'000;
};

/// Counters, written by the reporter's loop, readable anywhere.
struct ReporterStats {
  std::atomic<uint64_t> spans_reported{0};  // in batches the collector accepted (2xx)
  std::atomic<uint64_t> spans_dropped{0};   // refused by report(): the buffer was full
  std::atomic<uint64_t> spans_failed{0};    // in batches that failed
  std::atomic<uint64_t> batches_sent{0};    // accepted batches
  std::atomic<uint64_t> batches_failed{0};

  static uint64_t read(const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); }
};

class Reporter final : NonCopyable, loop::TcpConnCallbacks, http::ParserCallbacks {
 public:
  /// `stats`: where the counters go, when the caller keeps them beyond the reporter (it
  /// must outlive it); null = the reporter's own.
  Reporter(loop::Loop& loop, ReporterOptions options, ReporterStats* stats = nullptr);
  /// Drops whatever is buffered or in flight (call flush() and run the loop first to keep it).
  ~Reporter() override;

  /// Buffers `span` for the next batch, or drops it (counted) when the buffer is full.
  void report(const Span& span);
  /// Sends what is buffered now, unless a request is in flight or a backoff is running (the
  /// buffer then goes when it ends).
  void flush();
  /// New options (a config push): buffered spans stay; a request in flight finishes where it
  /// went; later ones go to the new collector, on a new connection if its address changed.
  void reconfigure(ReporterOptions options);

  /// Spans waiting in the buffer (not counting a batch in flight).
  size_t buffered() const { return buffered_; }
  bool in_flight() const { return in_flight_; }
  /// Thread-safe: the counters are atomics.
  const ReporterStats& stats() const { return stats_; }

 private:
  // TcpConnCallbacks
  void on_connected() override;
  void on_data(const char* data, size_t len) override;
  void on_eof() override;
  void on_error(int uv_error) override;
  // ParserCallbacks
  void on_response_head(http::ResponseHead& head) override;
  void on_body(const char*, size_t) override {}
  void on_message_complete() override;

  void arm();
  void send_batch();
  void send_request();
  void write_request();
  void finish(bool ok);
  /// The connection broke: fails the batch in flight (or sends it once more, see above).
  void connection_failed();
  void drop_connection();

  loop::Loop& loop_;
  ReporterOptions options_;
  ReporterStats own_stats_;
  ReporterStats& stats_;  // own_stats_, or the caller's

  std::string buffer_;  // encoded spans, comma-separated, without the brackets
  size_t buffered_ = 0;
  std::string body_;  // the batch in flight: "[...]"
  size_t batch_size_ = 0;
  std::string head_;
  loop::Timer flush_timer_;
  loop::Timer timeout_timer_;
  loop::Timer backoff_timer_;
  uint64_t backoff_ms_;
  loop::TcpConnPtr conn_;
  std::unique_ptr<http::Parser> parser_;
  bool connected_ = false;
  bool in_flight_ = false;
  bool reused_ = false;          // the request went on a connection that served one before
  bool resent_ = false;          // this batch was already sent once more
  bool response_bytes_ = false;  // a byte of the response arrived
  int status_ = 0;               // the final response's status; 0 until its head arrives
  bool complete_ = false;        // the response ended
  bool keep_alive_ = true;
  bool redial_ = false;  // the collector moved: close the connection after this request
};

}  // namespace meshbox::trace
