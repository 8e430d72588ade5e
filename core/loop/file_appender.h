// FileAppender: appends whole lines to a file (or stdout/stderr) without ever blocking its
// loop. Lines go into a buffer on the loop thread; the buffer is written by one job at a time
// on libuv's threadpool (open, write, reopen), so a slow or full disk never stalls the loop.
// The buffer is capped: a line that does not fit is dropped and counted, so memory stays
// bounded whatever the disk does. Files are opened O_APPEND and every write holds whole lines,
// so the lines of several appenders (one per worker) interleave but never tear; to a pipe,
// writes are cut at line boundaries into PIPE_BUF pieces, which the kernel keeps whole.
// A file moved away or deleted (logrotate's move + create) is noticed within reopen_check_ms
// and reopened by path; copytruncate works as is (O_APPEND).
//
// Loop thread only. Destroying the appender writes out what it holds first: a write in flight
// and the rest of the buffer finish on the threadpool (the loop stays alive until they do),
// so nothing appended before a clean stop is lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/base/non_copyable.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"

namespace meshbox::loop {

class FileAppender : NonCopyable {
 public:
  struct Options {
    size_t max_buffer = 1 << 20;      // bytes waiting to be written; beyond: lines dropped
    size_t write_at = 256 * 1024;     // start a write at once when this much waits
    uint64_t flush_delay_ms = 200;    // else write what waits after this long (<= 1 s)
    uint64_t reopen_check_ms = 1000;  // how often the path is checked for rotation
  };

  /// `path`: "/dev/stdout" and "/dev/stderr" are the process's own descriptors (never
  /// reopened or closed); anything else is opened (created 0644) on the first write.
  FileAppender(Loop& loop, std::string path, Options options);
  FileAppender(Loop& loop, std::string path) : FileAppender(loop, std::move(path), Options{}) {}
  ~FileAppender();

  /// Appends `lines` (whole lines, each ending in '\n'). False: the buffer is full and they
  /// were dropped (counted in dropped_lines()).
  bool append(std::string_view lines);
  /// Starts writing what waits now, if no write is in flight.
  void flush();

  const std::string& path() const { return path_; }
  /// Lines dropped: the buffer was full, or the file could not be opened or written.
  uint64_t dropped_lines() const { return dropped_; }
  /// Bytes handed to the kernel.
  uint64_t written_bytes() const;
  /// The last open or write error (a negative errno), 0 if none since the last success.
  int last_error() const;
  bool idle() const;  // nothing waits and nothing is in flight

 private:
  struct State;  // shared with the write in flight; owned by the appender or by that write
  void start_write();
  static void on_work(uv_work_t* req);
  static void on_after_work(uv_work_t* req, int status);

  Loop& loop_;
  std::string path_;
  Options options_;
  State* state_;
  std::unique_ptr<Timer> timer_;  // made on first use, on the loop thread
  uint64_t dropped_ = 0;
};

}  // namespace meshbox::loop
