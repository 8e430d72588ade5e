// DNS: a small asynchronous stub resolver on a libuv loop, for service entries with
// `resolution = "dns"` (the control plane's registry re-resolves each name when its TTL runs
// out) and for the data plane's passthrough of unknown hosts (plane/data/host_cache.h). A name is
// looked up in the hosts file first, then with A and AAAA queries over UDP to the nameservers of
// resolv.conf (each tried in turn, with a timeout per try), falling back to TCP when an answer
// comes back truncated. No search list: names are absolute (the hosts of a service entry are fully
// qualified); no DNSSEC; no cache (the registry keeps the answer for its TTL).
//
// The packet code (build_query, parse_response) is pure and parses untrusted input: it never
// reads outside the packet, follows compression pointers only backwards, and bounds CNAME
// chains (test/unit/core/dns/dns_test.cpp, test/fuzz/dns_packet_fuzz.cpp).
//
// Resolver and DnsQuery: Loop thread only (the control loop). The rest: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/loop/address.h"
#include "core/loop/loop.h"

namespace meshbox::dns {

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeCname = 5;
constexpr uint16_t kTypeSoa = 6;
constexpr uint16_t kTypeAaaa = 28;
constexpr uint16_t kClassIn = 1;

constexpr uint8_t kRcodeNoError = 0;
constexpr uint8_t kRcodeServFail = 2;
constexpr uint8_t kRcodeNxDomain = 3;

/// The longest CNAME chain parse_response follows (resolvers give up well before this).
constexpr int kMaxCnameChain = 16;

/// `ip` ("10.0.0.1", "2001:db8::1") with `port`, parsed without ever resolving a name
/// (unlike loop::Address::parse, which calls the blocking getaddrinfo for names).
std::optional<loop::Address> parse_ip(std::string_view ip, uint16_t port = 0);
inline bool is_ip(std::string_view s) {
  return parse_ip(s).has_value();
}

/// A standard query (recursion desired, one question of class IN) for `name` with `id`.
/// One trailing dot is allowed. Fails (InvalidArgument) if `name` is not a DNS host name: an
/// empty label, a label over 63 bytes, over 253 bytes in all, or a byte that is not printable
/// ASCII (or is a space).
Result<std::string> build_query(uint16_t id, std::string_view name, uint16_t qtype);

/// A response, as far as a stub resolver needs it.
struct Response {
  uint8_t rcode = 0;
  /// TC: the answer did not fit in the UDP datagram; nothing past the header is read.
  bool truncated = false;
  /// The `qtype` addresses of the question's name after its CNAME chain, as text
  /// ("10.0.0.1", "2001:db8::1"), in answer order, without duplicates.
  std::vector<std::string> addresses;
  /// How long the answer may be used, in seconds: the smallest TTL of the records used (the
  /// CNAMEs followed and the addresses). Without an address (NXDOMAIN, or no record of the
  /// type), the negative-caching TTL of RFC 2308 also counts: min(TTL, MINIMUM) of the
  /// authority section's first SOA. nullopt when no such record exists. TTLs above 2^31-1
  /// count as 0 (RFC 2181).
  std::optional<uint32_t> ttl;
  /// The end of the CNAME chain (the question's name when there is none), lower case.
  std::string canonical_name;
};

/// Parses the response to build_query(id, name, qtype). Fails (InvalidArgument, with the
/// reason) on anything else: fewer than 12 bytes, not a response, another id or opcode, a
/// question other than (name, qtype, IN), a record or name running past the end, a label of
/// a reserved type, a compression pointer that does not point before the name part that
/// holds it, a name over 255 bytes, an A record whose data is not 4 bytes (AAAA: 16), a
/// CNAME chain over kMaxCnameChain. Records of other types, classes or names are ignored;
/// the authority section is read only when there is no address, the additional section never.
/// A response with TC set, or an rcode other than NOERROR or NXDOMAIN, is returned with just
/// its flags (it may carry no question).
Result<Response> parse_response(std::string_view packet, uint16_t id, std::string_view name,
                                uint16_t qtype);

/// What resolv.conf says to a stub resolver. Defaults are glibc's (resolv.conf(5)).
struct ResolvConf {
  /// `nameserver IP` lines, at most 3 (glibc's MAXNS), port 53. meshbox also reads
  /// `nameserver IP:PORT` and `nameserver [IPv6]:PORT` (glibc skips such lines), so that a
  /// test can point meshbox at a DNS server on a port of its own. Empty: 127.0.0.1:53.
  std::vector<loop::Address> nameservers;
  uint64_t timeout_ms = 5000;  // `options timeout:N` (seconds, at most 30)
  int attempts = 2;            // `options attempts:N` (at most 5): rounds over the servers
};
ResolvConf parse_resolv_conf(std::string_view text);

/// A hosts file (hosts(5)): lower-case name or alias → its IPs in file order (IPv4 first).
using HostsTable = std::map<std::string, std::vector<std::string>, std::less<>>;
HostsTable parse_hosts(std::string_view text);

struct ResolverOptions {
  std::string resolv_conf = "/etc/resolv.conf";
  std::string hosts = "/etc/hosts";  // empty: no hosts file
  /// Override resolv.conf's timeout per try and attempts (0: take the file's).
  uint64_t timeout_ms = 0;
  int attempts = 0;

  /// The defaults, except that a resolv.conf in `state_dir` replaces the system's when there
  /// is one (docs/mesh.md): a mesh whose names live elsewhere than the host's, and tests.
  static ResolverOptions for_state_dir(const std::string& state_dir);
};

/// The result of one lookup.
struct Resolution {
  /// Not ok: no nameserver gave a usable answer for either family (timeouts, SERVFAIL,
  /// REFUSED, garbage, connection refused); the message says what happened last. NXDOMAIN
  /// and "no such record" are answers, not failures: ok, with no address.
  Status status;
  /// IPv4 addresses (A) first, then IPv6 (AAAA), each family in answer order.
  std::vector<std::string> addresses;
  /// See Response::ttl: the smaller of the two families'. nullopt from the hosts file.
  std::optional<uint32_t> ttl_s;
  bool from_hosts = false;
};

/// One lookup in flight. Destroying it cancels it: no callback after that, not even from a
/// reply already received. Loop thread only.
class DnsQuery : NonCopyable {
 public:
  virtual ~DnsQuery() = default;
};
using DnsQueryPtr = std::unique_ptr<DnsQuery>;

/// Starts lookups. Re-reads resolv.conf and the hosts file when they change (checked at
/// most every kFileCheckMs, when a lookup starts). Loop thread only (any loop: the control
/// loop, or a worker's). A query does not refer
/// to its Resolver: either may be destroyed first.
class Resolver : NonCopyable {
 public:
  static constexpr uint64_t kFileCheckMs = 30'000;
  using Done = std::function<void(Resolution)>;

  Resolver(loop::Loop& loop, ResolverOptions options = {});
  ~Resolver();

  /// Looks `name` up. `done` runs once on the loop, never inside this call, and may destroy
  /// the query (or anything else).
  DnsQueryPtr resolve(const std::string& name, Done done);

  const ResolvConf& resolv_conf() const { return conf_; }

 private:
  void refresh_files();

  loop::Loop& loop_;
  ResolverOptions options_;
  ResolvConf conf_;
  HostsTable hosts_;
  std::string conf_signature_, hosts_signature_;  // size and mtime when last read
  uint64_t checked_ms_ = 0;
  bool loaded_ = false;
};

}  // namespace meshbox::dns
