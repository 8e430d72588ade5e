#include "plane/data/shadow.h"

#include "core/base/log.h"

namespace meshbox::data {

Shadow* Shadow::start(Worker& worker, ClusterStatePtr cluster, std::string_view method,
                      std::string_view head, bool chunked, uint64_t timeout_ms,
                      const tls::TlsContextConstPtr& identity) {
  size_t i = cluster->pick(worker.random(), nullptr, {});
  if (i == ClusterState::npos) return nullptr;
  auto* s = new Shadow(worker, cluster, chunked, timeout_ms);
  s->pool_ = &cluster->pool(i);
  s->up_ = s->pool_->acquire(s, identity);
  if (!s->up_) {
    delete s;
    return nullptr;
  }
  worker.track(s);
  s->up_->expect_response_to(method);
  send(s->up_->tcp(), head, nullptr, 0, false, false);
  return s;
}

Shadow::Shadow(Worker& worker, ClusterStatePtr cluster, bool chunked, uint64_t timeout_ms)
    : worker_(worker),
      cluster_(std::move(cluster)),
      timer_(worker.loop(), [this] { give_up(); }),
      chunked_(chunked) {
  timer_.start(timeout_ms);
}

void Shadow::body(const char* data, size_t len) {
  if (!up_) return;
  send(up_->tcp(), {}, data, len, chunked_, false);
  // Never buffer for a mirror: a slow one is dropped, the request goes on.
  if (up_->tcp().above_high_watermark()) give_up();
}

void Shadow::detach(bool done) {
  attached_ = false;
  if (up_) {
    if (!done) return give_up();
    request_done_ = true;
    send(up_->tcp(), {}, nullptr, 0, chunked_, true);
  }
  if (!up_ || response_done_) finish();
}

void Shadow::on_upstream_complete() {
  response_done_ = true;
  if (up_) {
    pool_->release(up_, request_done_);
    up_ = nullptr;
  }
  if (!attached_) finish();
}

void Shadow::abort() {
  // The request it copies is being closed too, and will detach.
  if (attached_) return give_up();
  finish();
}

void Shadow::give_up() {
  if (up_) {
    pool_->release(up_, false);
    up_ = nullptr;
  }
  timer_.stop();
  if (!attached_) finish();
}

void Shadow::finish() {
  if (finished_) return;
  finished_ = true;
  timer_.stop();
  if (up_) {
    pool_->release(up_, false);
    up_ = nullptr;
  }
  worker_.remove(this);
}

}  // namespace meshbox::data
