// Loop: owns one uv_loop_t and everything that must die on its thread. One per thread: the
// control thread has one, each worker has one (LoopThread). Loop thread only, except
// is_this_thread().
//
// Handle rule (core-principles): every libuv handle in meshbox is allocated by its wrapper in
// core/loop and freed in its uv_close callback, so a wrapper may be destroyed right after it
// closes its handle; nothing outside core/loop calls uv_close.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"

namespace meshbox::loop {

/// Something whose destruction must wait until the current callback has returned.
class Deferred {
 public:
  virtual ~Deferred() = default;
};

class Loop : NonCopyable {
 public:
  static constexpr size_t kReadBufferSize = 64 * 1024;

  Loop();
  /// Closes the loop; every handle must already be closed (see close()).
  ~Loop();

  uv_loop_t* uv() { return &loop_; }
  /// Runs until stop() or until nothing is left to do. Binds the loop to the calling thread.
  void run();
  void stop() { uv_stop(&loop_); }
  /// Runs the loop until `done()` is true or `timeout_ms` passed; true if `done()` became
  /// true. For a start that must wait on the network before the loop proper runs (a remote
  /// store's first read); never from inside a callback of this loop.
  bool run_until(const std::function<bool()>& done, uint64_t timeout_ms);
  bool is_this_thread() const { return owner_ == std::this_thread::get_id(); }
  void bind_to_this_thread() { owner_ = std::this_thread::get_id(); }

  /// Milliseconds of the loop's clock (cached at the start of the iteration).
  uint64_t now_ms() const { return uv_now(const_cast<uv_loop_t*>(&loop_)); }

  /// One read buffer shared by every socket of this loop: data is handed to its consumer
  /// synchronously, and whatever must outlive the callback is copied out.
  char* read_buffer() { return read_buffer_.get(); }

  /// Destroys `obj` at the next loop iteration, after the current callback has returned.
  void defer_delete(std::unique_ptr<Deferred> obj);
  /// Runs `task` at the next loop iteration, after the current callback has returned (to
  /// report an error without re-entering the caller).
  void run_soon(std::function<void()> task);

  /// Runs the loop until every closing handle has been released, then closes it.
  /// Returns an error naming the handles still open, if any (a leak).
  Status close();

 private:
  static void on_idle(uv_idle_t* idle);

  uv_loop_t loop_;
  std::thread::id owner_;
  std::unique_ptr<char[]> read_buffer_;
  uv_idle_t* idle_;
  std::vector<std::unique_ptr<Deferred>> deferred_;
  std::vector<std::function<void()>> soon_;
  bool closed_ = false;
};

/// Closes `handle` (allocated with new, as type T) and frees it in the close callback.
template <typename T>
void close_and_free(T* handle) {
  auto* h = reinterpret_cast<uv_handle_t*>(handle);
  h->data = nullptr;
  if (uv_is_closing(h)) return;
  uv_close(h, [](uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); });
}

/// uv error code → message; also names the codes a connection's Transport adds
/// (core/loop/transport.h: kErrTransportHandshake = -30001, kErrTransportProtocol = -30002).
inline const char* uv_error(int err) {
  if (err == -30001) return "TLS handshake failed";
  if (err == -30002) return "TLS protocol error";
  return uv_strerror(err);
}

}  // namespace meshbox::loop
