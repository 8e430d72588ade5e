#include "core/loop/loop.h"

#include <string>

#include "core/base/assert.h"

namespace meshbox::loop {

Loop::Loop() : read_buffer_(new char[kReadBufferSize]), idle_(new uv_idle_t) {
  MB_CHECK(uv_loop_init(&loop_) == 0);
  owner_ = std::this_thread::get_id();
  uv_idle_init(&loop_, idle_);
  idle_->data = this;
}

Loop::~Loop() {
  if (!closed_) {
    Status s = close();
    if (!s.is_ok()) std::fprintf(stderr, "meshbox: %s\n", s.message().c_str());
  }
}

void Loop::run() {
  bind_to_this_thread();
  uv_run(&loop_, UV_RUN_DEFAULT);
}

bool Loop::run_until(const std::function<bool()>& done, uint64_t timeout_ms) {
  bind_to_this_thread();
  if (done()) return true;
  // A timer wakes the loop at the deadline even when nothing else happens.
  auto* timer = new uv_timer_t;
  uv_timer_init(&loop_, timer);
  bool expired = false;
  timer->data = &expired;
  uv_timer_start(
      timer, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, timeout_ms, 0);
  while (!done() && !expired)
    uv_run(&loop_, UV_RUN_ONCE);
  close_and_free(timer);
  return done();
}

void Loop::defer_delete(std::unique_ptr<Deferred> obj) {
  MB_ASSERT(is_this_thread());
  if (deferred_.empty() && soon_.empty()) uv_idle_start(idle_, &Loop::on_idle);
  deferred_.push_back(std::move(obj));
}

void Loop::run_soon(std::function<void()> task) {
  MB_ASSERT(is_this_thread());
  if (deferred_.empty() && soon_.empty()) uv_idle_start(idle_, &Loop::on_idle);
  soon_.push_back(std::move(task));
}

void Loop::on_idle(uv_idle_t* idle) {
  auto* self = static_cast<Loop*>(idle->data);
  // Tasks and destructors may queue more; loop until nothing is left.
  while (!self->deferred_.empty() || !self->soon_.empty()) {
    std::vector<std::function<void()>> tasks;
    tasks.swap(self->soon_);
    for (auto& t : tasks)
      t();
    std::vector<std::unique_ptr<Deferred>> batch;
    batch.swap(self->deferred_);
    batch.clear();
  }
  uv_idle_stop(idle);
}

Status Loop::close() {
  if (closed_) return Status::ok();
  closed_ = true;
  soon_.clear();
  deferred_.clear();
  close_and_free(idle_);
  // Let close callbacks run. A handle left open keeps the loop alive, so run a bounded number
  // of non-blocking iterations rather than blocking forever on a leak.
  for (int i = 0; i < 64 && uv_loop_alive(&loop_); ++i)
    uv_run(&loop_, UV_RUN_NOWAIT);
  int rc = uv_loop_close(&loop_);
  if (rc == 0) return Status::ok();
  std::string open;
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void* arg) {
        auto* out = static_cast<std::string*>(arg);
        *out += uv_handle_type_name(uv_handle_get_type(h));
        *out += uv_is_closing(h) ? "(closing) " : " ";
      },
      &open);
  return make_error(Code::Internal, "loop closed with handles still open: " + open);
}

}  // namespace meshbox::loop
