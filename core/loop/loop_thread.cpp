#include "core/loop/loop_thread.h"

#include <pthread.h>
#include <sched.h>

#include <cstring>

namespace meshbox::loop {

Status pin_current_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set); err != 0)
    return Status(Code::Io, "cannot pin the thread to CPU " + std::to_string(cpu) + ": " +
                                std::strerror(err));
  return {};
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) out.push_back(i);
  return out;
}

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
