#include "core/loop/timer.h"

namespace meshbox::loop {

Timer::Timer(Loop& loop, std::function<void()> on_fire)
    : handle_(new uv_timer_t), on_fire_(std::move(on_fire)) {
  uv_timer_init(loop.uv(), handle_);
  handle_->data = this;
}

Timer::~Timer() {
  close_and_free(handle_);
}

void Timer::start(uint64_t timeout_ms, uint64_t repeat_ms) {
  uint64_t now = uv_now(handle_->loop);
  deadline_ = now + timeout_ms;
  if (deadline_ == 0) deadline_ = 1;
  repeat_ms_ = repeat_ms;
  // Move the libuv timer only when it would fire too late (or is not armed).
  if (armed_ == 0 || armed_ > deadline_) {
    armed_ = deadline_;
    uv_timer_start(handle_, &Timer::on_uv_timer, timeout_ms, 0);
  }
}

void Timer::stop() {
  deadline_ = 0;
  if (armed_ != 0) {
    armed_ = 0;
    uv_timer_stop(handle_);
  }
}

void Timer::on_uv_timer(uv_timer_t* t) {
  auto* self = static_cast<Timer*>(t->data);
  if (!self) return;
  self->armed_ = 0;
  if (self->deadline_ == 0) return;  // stopped meanwhile
  uint64_t now = uv_now(t->loop);
  if (now < self->deadline_) {
    // Pushed back meanwhile: sleep for the rest.
    self->armed_ = self->deadline_;
    uv_timer_start(t, &Timer::on_uv_timer, self->deadline_ - now, 0);
    return;
  }
  if (self->repeat_ms_) {
    self->start(self->repeat_ms_, self->repeat_ms_);
  } else {
    self->deadline_ = 0;
  }
  // The callback may destroy this Timer (and with it on_fire_): run a copy. Lambdas that
  // capture a pointer or two fit std::function's small buffer, so this does not allocate.
  auto fire = self->on_fire_;
  fire();  // nothing may touch `self` after this line
}

}  // namespace meshbox::loop
