#include "core/loop/timer.h"

namespace meshbox::loop {

Timer::Timer(Loop& loop, std::function<void()> on_fire)
    : handle_(new uv_timer_t), on_fire_(std::move(on_fire)) {
  uv_timer_init(loop.uv(), handle_);
  handle_->data = this;
}

Timer::~Timer() { close_and_free(handle_); }

void Timer::start(uint64_t timeout_ms, uint64_t repeat_ms) {
  uv_timer_start(
      handle_,
      [](uv_timer_t* t) {
        if (auto* self = static_cast<Timer*>(t->data)) self->on_fire_();
      },
      timeout_ms, repeat_ms);
}

void Timer::stop() { uv_timer_stop(handle_); }

}  // namespace meshbox::loop
