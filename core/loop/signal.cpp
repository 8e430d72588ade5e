#include "core/loop/signal.h"

namespace meshbox::loop {

Signal::Signal(Loop& loop, int signum, std::function<void()> on_signal)
    : handle_(new uv_signal_t), on_signal_(std::move(on_signal)) {
  uv_signal_init(loop.uv(), handle_);
  handle_->data = this;
  uv_signal_start(
      handle_,
      [](uv_signal_t* h, int) {
        if (auto* self = static_cast<Signal*>(h->data)) self->on_signal_();
      },
      signum);
}

Signal::~Signal() {
  close_and_free(handle_);
}

}  // namespace meshbox::loop
