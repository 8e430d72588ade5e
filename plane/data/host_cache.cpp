#include "plane/data/host_cache.h"

#include <algorithm>

namespace meshbox::data {

HostCache::HostCache(loop::Loop& loop, dns::ResolverOptions options)
    : loop_(loop), options_(std::move(options)) {}

HostCache::~HostCache() = default;

HostCache::Answer HostCache::answer_of(const Entry& e, uint16_t port) {
  for (const auto& a : e.addresses)
    if (auto addr = dns::parse_ip(a, port)) return *addr;
  return Status(Code::NotFound, e.error);
}

std::optional<HostCache::Answer> HostCache::lookup(const std::string& host, uint16_t port,
                                                   Waiter* w) {
  uint64_t now = loop_.now_ms();
  auto it = entries_.find(host);
  if (it != entries_.end() && !it->second->query && it->second->expires_ms > now)
    return answer_of(*it->second, port);
  if (it == entries_.end()) {
    make_room();
    it = entries_.emplace(host, std::make_unique<Entry>()).first;
  }
  Entry& e = *it->second;
  w->port_ = port;
  e.waiters.push_back(w);
  if (!e.query) {
    if (!resolver_) resolver_ = std::make_unique<dns::Resolver>(loop_, options_);
    e.query = resolver_->resolve(
        host, [this, host](dns::Resolution r) { on_resolved(host, std::move(r)); });
  }
  return std::nullopt;
}

void HostCache::on_resolved(std::string host, dns::Resolution r) {
  auto it = entries_.find(host);
  if (it == entries_.end()) return;
  Entry& e = *it->second;
  uint64_t now = loop_.now_ms();
  e.query.reset();  // done: the resolver keeps nothing of it (this callback may end it)
  e.addresses = std::move(r.addresses);
  e.answered_ms = now;
  uint64_t ttl = kNegativeTtlMs;
  if (!r.status.is_ok()) {
    e.error = "cannot resolve " + host + ": " + r.status.message();
  } else if (e.addresses.empty()) {
    e.error = host + ": no such host";
  } else {
    e.error.clear();
    ttl = r.ttl_s ? std::clamp<uint64_t>(uint64_t{*r.ttl_s} * 1000, kMinTtlMs, kMaxTtlMs)
                  : kHostsTtlMs;
  }
  e.expires_ms = now + ttl;
  // Each waiter leaves the list before it is called: it may start another lookup, or end.
  while (!e.waiters.empty()) {
    Waiter* w = e.waiters.front();
    w->unlink();
    w->on_host_resolved(answer_of(e, w->port_));
  }
}

void HostCache::make_room() {
  if (entries_.size() < kMaxEntries) return;
  uint64_t now = loop_.now_ms();
  auto idle = [](const Entry& e) { return !e.query && e.waiters.empty(); };
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (idle(*it->second) && it->second->expires_ms <= now) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  if (entries_.size() < kMaxEntries) return;
  auto oldest = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (idle(*it->second) &&
        (oldest == entries_.end() || it->second->answered_ms < oldest->second->answered_ms))
      oldest = it;
  if (oldest != entries_.end()) entries_.erase(oldest);
}

}  // namespace meshbox::data
