// HostCache: a worker's DNS cache for the passthrough cluster (Istio's PassthroughCluster
// under outbound_traffic_policy allow_any): a request for a host no service or service entry
// knows goes to that host itself, looked up here (Envoy's dynamic forward proxy DNS cache).
//
// - A host is looked up once however many requests want it: they queue on its entry and are
//   called back together, on a later loop iteration (never inside lookup()).
// - Answers are kept for their TTL, between kMinTtlMs and kMaxTtlMs (hosts-file answers, which
//   carry none, for kHostsTtlMs); failures and "no such host" for kNegativeTtlMs, so a storm
//   of requests for a bad name does not become a storm of queries.
// - At most kMaxEntries hosts: past that, expired entries go first, then the oldest answered
//   one. Entries that requests wait on stay.
// Loop thread only (the owning worker's).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/linked_list.h"
#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/dns/dns.h"
#include "core/loop/address.h"
#include "core/loop/loop.h"

namespace meshbox::data {

class HostCache : NonCopyable {
 public:
  static constexpr uint64_t kMinTtlMs = 1'000;
  static constexpr uint64_t kMaxTtlMs = 300'000;
  static constexpr uint64_t kHostsTtlMs = 60'000;
  static constexpr uint64_t kNegativeTtlMs = 5'000;
  static constexpr size_t kMaxEntries = 1'024;

  /// What a lookup gives: the host's first address (IPv4 preferred) with the port asked for,
  /// or why there is none.
  using Answer = Result<loop::Address>;

  /// A request waiting for a host. Unlinking it (or destroying it) cancels the wait.
  class Waiter : public LinkedNode {
   public:
    virtual ~Waiter() = default;
    virtual void on_host_resolved(const Answer& answer) = 0;

   private:
    friend class HostCache;
    uint16_t port_ = 0;
  };

  HostCache(loop::Loop& loop, dns::ResolverOptions options);
  ~HostCache();

  /// The address of `host` (a name, lower case, no port) at `port`: the answer when it is
  /// cached, else nullopt and `w` is called back once the lookup is done.
  std::optional<Answer> lookup(const std::string& host, uint16_t port, Waiter* w);

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::vector<std::string> addresses;  // empty: no such host, or the lookup failed
    std::string error;                   // why there is no address
    uint64_t expires_ms = 0;
    uint64_t answered_ms = 0;
    dns::DnsQueryPtr query;  // in flight
    LinkedList<Waiter> waiters;
  };
  static Answer answer_of(const Entry& e, uint16_t port);
  void on_resolved(std::string host, dns::Resolution r);  // host by value: the query goes
  void make_room();

  loop::Loop& loop_;
  dns::ResolverOptions options_;
  std::unique_ptr<dns::Resolver> resolver_;  // made on first use, on the loop's thread
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;
};

}  // namespace meshbox::data
