#include "core/loop/mailbox.h"

namespace meshbox::loop {

Mailbox::Mailbox(Loop& loop) : async_(new uv_async_t) {
  uv_async_init(loop.uv(), async_, &Mailbox::on_wakeup);
  async_->data = this;
}

Mailbox::~Mailbox() {
  close_and_free(async_);
  // Tasks never delivered are dropped here, on the owner's thread.
  std::lock_guard lock(mu_);
  tasks_.clear();
}

void Mailbox::post(Task task) {
  bool was_empty;
  {
    std::lock_guard lock(mu_);
    was_empty = tasks_.empty();
    tasks_.push_back(std::move(task));
  }
  if (was_empty) uv_async_send(async_);
}

void Mailbox::on_wakeup(uv_async_t* async) {
  if (auto* self = static_cast<Mailbox*>(async->data)) self->drain();
}

void Mailbox::drain() {
  std::vector<Task> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(tasks_);
  }
  for (Task& t : batch)
    t();
}

}  // namespace meshbox::loop
