#include "core/loop/loop_thread.h"

#include <pthread.h>

namespace meshbox::loop {

LoopThread::LoopThread(std::string name)
    : name_(std::move(name)),
      loop_(std::make_unique<Loop>()),
      mailbox_(std::make_unique<Mailbox>(*loop_)) {}

LoopThread::~LoopThread() {
  if (thread_.joinable()) {
    release();
    (void)join();
  }
}

void LoopThread::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
    loop_->run();
    {
      std::lock_guard lock(post_mu_);
      mailbox_.reset();  // try_post() sees it gone
    }
    close_status_ = loop_->close();
  });
}

bool LoopThread::try_post(Mailbox::Task task) {
  std::lock_guard lock(post_mu_);
  if (!mailbox_) return false;
  mailbox_->post(std::move(task));
  return true;
}

void LoopThread::release() {
  post([this] { mailbox_->unref(); });
}

Status LoopThread::join() {
  if (thread_.joinable()) thread_.join();
  return close_status_;
}

}  // namespace meshbox::loop
