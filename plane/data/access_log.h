// Access logs: a line per request (and per TCP proxy connection) of every listener whose spec
// has an access log (ListenerSpec::access_log, config::AccessLogSpec): Istio's JSON fields by
// default, or Envoy's text format, or a format of the config's own.
//
// AccessLogFormatter turns a record into a line. AccessLogger is the TelemetryObserver a
// worker owns one of: it formats on the worker's thread into a per-worker buffer for each
// destination, which a FileAppender (core/loop/file_appender.h) writes on the threadpool, one
// write in flight at a time, the buffer capped (lines beyond it are dropped and counted). No
// lock, no blocking call on the request path. Loop thread only (the worker's).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/loop/file_appender.h"
#include "core/stats/metric.h"
#include "plane/config/access_log_format.h"
#include "plane/data/telemetry.h"

namespace meshbox::data {

/// Formats records as lines. Keeps a little per-thread state (the last START_TIME second), so
/// one per thread.
class AccessLogFormatter {
 public:
  /// Appends the line for `r` (newline included) to `out`.
  void format(const config::AccessLogSpec& spec, const RequestRecord& r, std::string& out);
  void format(const config::AccessLogSpec& spec, const ConnectionRecord& r, std::string& out);

  struct Entry;  // a request or a connection, seen alike

 private:
  void format_entry(const config::AccessLogSpec& spec, Entry& e, std::string& out);
  void format_json(const config::AccessLogSpec& spec, const Entry& e, std::string& out);
  void format_default_json(const Entry& e, std::string& out);
  /// A template's text: each operator's value ('-' when unknown), literals as they are. A text
  /// line (`text_line`) has control characters in values written as \xHH.
  void append_template(const config::LogTemplate& tpl, const Entry& e, bool text_line,
                       std::string& out);
  void append_start_time(const config::LogToken& t, uint64_t unix_us, std::string& out);
  /// The default START_TIME ("2026-11-26T13:57:50.123Z") at `p`; returns its end.
  char* write_default_time(char* p, uint64_t unix_us);
  static constexpr size_t kTimePrefix = 32;  // room for "YYYY-MM-DDTHH:MM:SS", any year
  static constexpr size_t kMaxDefaultTime = kTimePrefix + 5;
  /// A listener's address as text (DOWNSTREAM_LOCAL_ADDRESS), from a small cache.
  std::string_view local_text(const loop::Address& address);

  struct LocalText {
    loop::Address address;
    std::string text;
  };
  std::array<LocalText, 4> local_texts_;
  size_t next_local_ = 0;
  /// The default JSON line's members from upstream_cluster to destination_service but the
  /// client's address (the cluster, the listener's address, the reporter, the peers'
  /// identities, the service), as written for their values: `json` is the members before the
  /// client's address (up to `split`) and those after it. The last four sets are kept, and
  /// the values decide, never a pointer.
  struct IdentityMembers {
    stats::LabelCopy values;
    std::string json;
    size_t split = 0;
  };
  /// Null if `values` is none of the kept sets.
  const IdentityMembers* find_identity(std::span<const std::string_view> values) const;
  void keep_identity(std::span<const std::string_view> values, std::string_view before,
                     std::string_view after);
  std::array<IdentityMembers, 4> identity_members_;
  size_t next_identity_ = 0;
  std::unique_ptr<char[]> line_;  // a JSON line is written here first
  size_t line_room_ = 0;
  int64_t cached_second_ = -1;
  char cached_prefix_[kTimePrefix] = {};  // "YYYY-MM-DDTHH:MM:SS" of cached_second_
  size_t cached_length_ = 0;
  std::string scratch_;
  std::string value_, joined_;  // a line's computed text, kept for their capacity
};

class AccessLogger : public TelemetryObserver {
 public:
  /// `loop`: the worker's; used from its thread only (the first line makes the first file).
  /// `current`: the worker's current snapshot (Worker::snapshot()). A connection keeps the
  /// listener spec it was accepted with, but its requests are logged as the current
  /// snapshot's listener of the same name says, so that a reload that turns logs on, off or
  /// into another format applies to keep-alive connections too. Null: as the record's.
  explicit AccessLogger(loop::Loop& loop, const SnapshotConstPtr* current = nullptr,
                        loop::FileAppender::Options options = {});
  ~AccessLogger() override;

  void on_request(const RequestRecord& r) override;
  void on_connection(const ConnectionRecord& r) override;
  /// The worker stops: what is buffered is written out, timers are released. A line that
  /// still comes is written at once.
  void on_stop() override;

  uint64_t lines() const { return lines_; }
  /// Lines dropped by every destination so far (a full buffer, a file that cannot be
  /// written).
  uint64_t dropped() const;

 private:
  const config::AccessLogSpec* spec_for(const ListenerSpec* listener);
  loop::FileAppender& sink(const std::string& path);
  void write(const std::string& path);

  struct Sink {
    std::unique_ptr<loop::FileAppender> appender;
    uint64_t last_used_ms = 0;
  };
  loop::Loop& loop_;
  const SnapshotConstPtr* current_;
  // Listener (of any snapshot still pinned) → the current snapshot's spec for its name;
  // cleared when the current snapshot changes.
  const Snapshot* cached_snapshot_ = nullptr;
  std::unordered_map<const ListenerSpec*, const config::AccessLogSpec*> specs_;
  loop::FileAppender::Options options_;
  AccessLogFormatter formatter_;
  std::string line_;
  std::vector<Sink> sinks_;
  uint64_t lines_ = 0;
  uint64_t dropped_closed_ = 0;  // by sinks closed since
  uint64_t dropped_reported_ = 0;
  bool stopped_ = false;
};

}  // namespace meshbox::data
