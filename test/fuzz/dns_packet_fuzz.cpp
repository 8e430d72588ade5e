// Fuzz target for the DNS code of core/dns/dns.h, which parses what the network sends.
// The first byte picks the question (A or AAAA) and the rest is the packet, whose own first
// two bytes are taken as the expected id, so that parsing gets past the header. Beyond "never
// crash" it checks what parse_response promises (addresses are IPs of the asked family,
// without duplicates; TTLs below 2^31; no address with TC or an error rcode), that a query
// built from the input reads back as a question (and is refused as an answer), and that
// resolv.conf and hosts parsing survive the same bytes.
//
// libFuzzer entry point; in normal builds replay_main.cpp runs the corpus through it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/dns/dns.h"

namespace {

namespace dns = meshbox::dns;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "dns_packet_fuzz: invariant broken: %s\n", what);
  std::abort();
}

void check_response(std::string_view pkt, std::string_view name, uint16_t qtype) {
  if (pkt.size() < 2) return;
  auto id =
      static_cast<uint16_t>((static_cast<uint8_t>(pkt[0]) << 8) | static_cast<uint8_t>(pkt[1]));
  auto r = dns::parse_response(pkt, id, name, qtype);
  if (!r) {
    if (r.error().message().empty()) die("an error without a message");
    return;
  }
  if ((r->truncated || (r->rcode != dns::kRcodeNoError && r->rcode != dns::kRcodeNxDomain)) &&
      !r->addresses.empty())
    die("addresses with TC or an error rcode");
  if (r->ttl && *r->ttl > 0x7fffffffu) die("a TTL of 2^31 or more");
  for (size_t i = 0; i < r->addresses.size(); ++i) {
    const std::string& a = r->addresses[i];
    auto ip = dns::parse_ip(a);
    if (!ip) die("an address that is not an IP");
    if ((ip->family() == AF_INET) != (qtype == dns::kTypeA)) die("an address of the other family");
    if (std::find(r->addresses.begin(), r->addresses.begin() + static_cast<long>(i), a) !=
        r->addresses.begin() + static_cast<long>(i))
      die("a duplicate address");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint16_t qtype = data[0] & 1 ? dns::kTypeAaaa : dns::kTypeA;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  check_response(rest, "ext.example.test", qtype);
  check_response(rest, "a.test", qtype);

  // A name from the input: if it makes a query, the query is not an answer, and with QR set
  // it is the empty answer to its own question.
  std::string_view name = rest.substr(0, std::min<size_t>(rest.size(), 300));
  name = name.substr(0, name.find('\0'));
  auto q = dns::build_query(0x4242, name, qtype);
  if (q) {
    if (dns::parse_response(*q, 0x4242, name, qtype)) die("a query parsed as a response");
    std::string answer = *q;
    answer[2] = static_cast<char>(answer[2] | 0x80);
    auto r = dns::parse_response(answer, 0x4242, name, qtype);
    if (!r) die("a query's own question does not read back");
    if (!r->addresses.empty() || r->ttl) die("an empty answer with addresses or a TTL");
  }

  dns::ResolvConf conf = dns::parse_resolv_conf(rest);
  if (conf.nameservers.empty() || conf.nameservers.size() > 3) die("nameserver count");
  if (conf.timeout_ms < 1000 || conf.timeout_ms > 30'000) die("timeout out of range");
  if (conf.attempts < 1 || conf.attempts > 5) die("attempts out of range");
  for (const auto& [host, ips] : dns::parse_hosts(rest))
    for (const auto& ip : ips)
      if (!dns::is_ip(ip)) die("a hosts entry that is not an IP");
  return 0;
}
