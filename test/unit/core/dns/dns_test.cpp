// Tests for core/dns/dns.h and the registry's DNS names: the packet builder and parser
// (answers, CNAME chains, compression, negative TTLs, and every way a hostile or broken packet
// can be wrong: truncated at each byte, random garbage, pointer loops, oversized names),
// resolv.conf and hosts parsing, and the Resolver and Registry against a fake DNS server
// (UDP and TCP on 127.0.0.1, answering from a script on a thread of its own): nameserver
// failover on silence, SERVFAIL and refused ports, TCP fallback after TC, the hosts file
// first, cancellation, re-resolution on TTL, and failures keeping the last good addresses.
// No sleeps: the loop runs until a condition holds, with a deadline. Every loop closes clean.
#include "core/dns/dns.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/loop/loop.h"
#include "plane/control/registry.h"
#include "test/support/files.h"
#include "test/support/test_loop.h"

namespace meshbox::dns {
namespace {

using namespace std::chrono_literals;
using control::Endpoint;
using control::Registry;
using loop::run_until;
using test::TempDir;

constexpr uint16_t kNoError = 0x8180;  // QR, RD, RA
constexpr uint16_t kNxDomain = 0x8183;
constexpr uint16_t kServFail = 0x8182;
constexpr uint16_t kRefused = 0x8185;
constexpr uint16_t kTruncated = 0x8380;  // QR, TC, RD, RA

// ---------------------------------------------------------------------------------------
// A DNS message writer for the tests, independent of the code under test. Names are written
// whole unless a pointer is asked for.

struct Packet {
  std::string b;

  Packet& u8(uint8_t v) {
    b.push_back(static_cast<char>(v));
    return *this;
  }
  Packet& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v)); }
  Packet& u32(uint32_t v) {
    return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v));
  }
  Packet& raw(std::string_view s) {
    b.append(s);
    return *this;
  }
  /// Labels, then the root label unless `then_pointer` (then a pointer to it follows).
  Packet& name(std::string_view n, std::optional<uint16_t> then_pointer = std::nullopt) {
    size_t start = 0;
    while (start < n.size()) {
      size_t dot = n.find('.', start);
      if (dot == std::string_view::npos) dot = n.size();
      u8(static_cast<uint8_t>(dot - start)).raw(n.substr(start, dot - start));
      start = dot + 1;
    }
    if (then_pointer) return pointer(*then_pointer);
    return u8(0);
  }
  Packet& pointer(uint16_t offset) { return u16(static_cast<uint16_t>(0xc000 | offset)); }
  Packet& header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns = 0,
                 uint16_t ar = 0) {
    return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  Packet& question(std::string_view n, uint16_t type) { return name(n).u16(type).u16(kClassIn); }
  /// A record's type, class IN, TTL and data, after its owner name (written by the caller).
  Packet& rr(uint16_t type, uint32_t ttl, std::string_view rdata) {
    return u16(type).u16(kClassIn).u32(ttl).u16(static_cast<uint16_t>(rdata.size())).raw(rdata);
  }
  size_t size() const { return b.size(); }
};

std::string ipv4(const char* text) {
  in_addr a{};
  REQUIRE(inet_pton(AF_INET, text, &a) == 1);
  return std::string(reinterpret_cast<const char*>(&a), 4);
}

std::string ipv6(const char* text) {
  in6_addr a{};
  REQUIRE(inet_pton(AF_INET6, text, &a) == 1);
  return std::string(reinterpret_cast<const char*>(&a), 16);
}

std::string wire_name(std::string_view n) {
  return Packet().name(n).b;
}

// The usual answer: `name` A → the addresses, each with `ttl`, owners compressed to the
// question's name (offset 12).
std::string a_answer(uint16_t id, std::string_view name, std::vector<const char*> ips,
                     uint32_t ttl) {
  Packet p;
  p.header(id, kNoError, 1, static_cast<uint16_t>(ips.size())).question(name, kTypeA);
  for (const char* ip : ips)
    p.pointer(12).rr(kTypeA, ttl, ipv4(ip));
  return p.b;
}

// ---------------------------------------------------------------------------------------
// Queries

TEST_CASE("dns: build_query writes one question with recursion desired") {
  auto q = build_query(0xbeef, "Example.COM.", kTypeAaaa);
  REQUIRE(q.has_value());
  Packet want;
  want.header(0xbeef, 0x0100, 1, 0).question("Example.COM", kTypeAaaa);
  CHECK(*q == want.b);

  // The longest legal name: 253 bytes (four labels of 63 and a dot between each, minus 1).
  std::string label63(63, 'a');
  std::string longest = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  CHECK(longest.size() == 253);
  CHECK(build_query(1, longest, kTypeA).has_value());
  CHECK_FALSE(build_query(1, longest + "b", kTypeA).has_value());

  for (std::string bad : {std::string(), std::string("."), std::string("a..b"), std::string(".a"),
                          std::string(64, 'x') + ".com", std::string("with space.com"),
                          std::string("tab\t.com"), std::string("caf\xc3\xa9.com")}) {
    CAPTURE(bad);
    auto r = build_query(1, bad, kTypeA);
    CHECK_FALSE(r.has_value());
    if (!r) CHECK(r.error().code() == Code::InvalidArgument);
  }
}

TEST_CASE("dns: parse_ip parses IPs and never names") {
  auto v4 = parse_ip("10.1.2.3", 8080);
  REQUIRE(v4.has_value());
  CHECK(v4->to_string() == "10.1.2.3:8080");
  auto v6 = parse_ip("2001:db8::1", 443);
  REQUIRE(v6.has_value());
  CHECK(v6->to_string() == "[2001:db8::1]:443");
  CHECK_FALSE(parse_ip("localhost").has_value());
  CHECK_FALSE(parse_ip("example.com").has_value());
  CHECK_FALSE(parse_ip("").has_value());
  CHECK_FALSE(parse_ip("10.0.0.1:80").has_value());
  CHECK(is_ip("::1"));
  CHECK_FALSE(is_ip("ext.example.test"));
}

// ---------------------------------------------------------------------------------------
// Answers

TEST_CASE("dns: parse_response reads the addresses of the name and the smallest TTL") {
  std::string pkt = a_answer(7, "ext.example.test", {"10.0.0.1", "10.0.0.2", "10.0.0.1"}, 60);
  auto r = parse_response(pkt, 7, "ext.example.test", kTypeA);
  REQUIRE(r.has_value());
  CHECK(r->rcode == kRcodeNoError);
  CHECK_FALSE(r->truncated);
  CHECK(r->addresses == std::vector<std::string>{"10.0.0.1", "10.0.0.2"});  // no duplicate
  CHECK(r->ttl == 60u);
  CHECK(r->canonical_name == "ext.example.test");

  SUBCASE("names compare without case and without the trailing dot") {
    auto upper = parse_response(a_answer(7, "EXT.Example.test", {"10.0.0.1"}, 5), 7,
                                "ext.example.TEST.", kTypeA);
    REQUIRE(upper.has_value());
    CHECK(upper->addresses == std::vector<std::string>{"10.0.0.1"});
  }
  SUBCASE("AAAA") {
    Packet p;
    p.header(9, kNoError, 1, 2).question("v6.test", kTypeAaaa);
    p.pointer(12).rr(kTypeAaaa, 30, ipv6("2001:db8::1"));
    p.pointer(12).rr(kTypeAaaa, 20, ipv6("::1"));
    auto v6 = parse_response(p.b, 9, "v6.test", kTypeAaaa);
    REQUIRE(v6.has_value());
    CHECK(v6->addresses == std::vector<std::string>{"2001:db8::1", "::1"});
    CHECK(v6->ttl == 20u);
  }
  SUBCASE("records of other names, types and classes are ignored") {
    Packet p;
    p.header(3, kNoError, 1, 4).question("a.test", kTypeA);
    p.name("evil.test").rr(kTypeA, 5, ipv4("6.6.6.6"));  // not on the chain: poisoning
    p.pointer(12).rr(kTypeAaaa, 5, ipv6("::1"));         // another type
    p.pointer(12).u16(kTypeA).u16(3).u32(5).u16(4).raw(ipv4("7.7.7.7"));  // class CH
    p.pointer(12).rr(kTypeA, 9, ipv4("10.9.9.9"));
    auto r2 = parse_response(p.b, 3, "a.test", kTypeA);
    REQUIRE(r2.has_value());
    CHECK(r2->addresses == std::vector<std::string>{"10.9.9.9"});
    CHECK(r2->ttl == 9u);
  }
  SUBCASE("a TTL with the top bit set counts as 0 (RFC 2181)") {
    auto big =
        parse_response(a_answer(7, "x.test", {"10.0.0.1"}, 0x80000000u), 7, "x.test", kTypeA);
    REQUIRE(big.has_value());
    CHECK(big->ttl == 0u);
  }
}

TEST_CASE("dns: parse_response follows a CNAME chain, compressed names included") {
  // www.example.com CNAME edge.cdn.example.net; edge.cdn.example.net CNAME
  // e1.example.net (compressed against the previous name's "example.net"); e1 A 192.0.2.7.
  Packet p;
  p.header(42, kNoError, 1, 4).question("www.example.com", kTypeA);
  size_t first_cname_data = p.size() + 12;  // owner pointer (2) + type..rdlength (10)
  std::string edge = wire_name("edge.cdn.example.net");
  p.pointer(12).rr(kTypeCname, 300, edge);
  // "example.net" inside the first CNAME's data starts after "edge" and "cdn".
  auto example_net = static_cast<uint16_t>(first_cname_data + 5 + 4);
  auto edge_at = static_cast<uint16_t>(first_cname_data);
  Packet e1;
  e1.name("e1", example_net);
  p.pointer(edge_at).rr(kTypeCname, 120, e1.b);
  // An A record for the middle of the chain is not the answer.
  p.pointer(edge_at).rr(kTypeA, 5, ipv4("198.51.100.1"));
  p.name("e1", example_net).rr(kTypeA, 200, ipv4("192.0.2.7"));
  auto r = parse_response(p.b, 42, "www.example.com", kTypeA);
  REQUIRE(r.has_value());
  CHECK(r->addresses == std::vector<std::string>{"192.0.2.7"});
  CHECK(r->canonical_name == "e1.example.net");
  CHECK(r->ttl == 120u);  // the smallest along the chain

  SUBCASE("a chain that ends without an address is an answer without address") {
    Packet q;
    q.header(1, kNoError, 1, 1).question("a.test", kTypeA);
    q.pointer(12).rr(kTypeCname, 50, wire_name("b.test"));
    auto none = parse_response(q.b, 1, "a.test", kTypeA);
    REQUIRE(none.has_value());
    CHECK(none->addresses.empty());
    CHECK(none->canonical_name == "b.test");
    CHECK(none->ttl == 50u);
  }
}

TEST_CASE("dns: negative answers: NXDOMAIN and NODATA, with the SOA's TTL") {
  auto soa = [](uint32_t minimum) {
    Packet d;
    d.name("ns1.test")
        .name("hostmaster.test")
        .u32(2024010101)
        .u32(3600)
        .u32(600)
        .u32(86400)
        .u32(minimum);
    return d.b;
  };
  Packet p;
  p.header(5, kNxDomain, 1, 0, 1).question("gone.test", kTypeA);
  p.name("test").rr(kTypeSoa, 900, soa(30));
  auto r = parse_response(p.b, 5, "gone.test", kTypeA);
  REQUIRE(r.has_value());
  CHECK(r->rcode == kRcodeNxDomain);
  CHECK(r->addresses.empty());
  CHECK(r->ttl == 30u);  // min(SOA TTL, MINIMUM)

  Packet nodata;
  nodata.header(6, kNoError, 1, 0, 1).question("v4only.test", kTypeAaaa);
  nodata.name("test").rr(kTypeSoa, 10, soa(300));
  auto r2 = parse_response(nodata.b, 6, "v4only.test", kTypeAaaa);
  REQUIRE(r2.has_value());
  CHECK(r2->rcode == kRcodeNoError);
  CHECK(r2->addresses.empty());
  CHECK(r2->ttl == 10u);

  Packet bare;
  bare.header(7, kNoError, 1, 0).question("v4only.test", kTypeAaaa);
  auto r3 = parse_response(bare.b, 7, "v4only.test", kTypeAaaa);
  REQUIRE(r3.has_value());
  CHECK_FALSE(r3->ttl.has_value());

  Packet bad_soa;
  bad_soa.header(8, kNxDomain, 1, 0, 1).question("gone.test", kTypeA);
  bad_soa.name("test").rr(kTypeSoa, 900, soa(30).substr(0, 30));
  CHECK_FALSE(parse_response(bad_soa.b, 8, "gone.test", kTypeA).has_value());
}

TEST_CASE("dns: server errors and truncation come back as rcode and flag") {
  Packet servfail;
  servfail.header(1, kServFail, 0, 0);  // without its question: allowed for errors
  auto r = parse_response(servfail.b, 1, "a.test", kTypeA);
  REQUIRE(r.has_value());
  CHECK(r->rcode == kRcodeServFail);
  CHECK(r->addresses.empty());

  Packet tc;
  tc.header(2, kTruncated, 1, 3).question("big.test", kTypeA);  // the answers were cut off
  auto t = parse_response(tc.b, 2, "big.test", kTypeA);
  REQUIRE(t.has_value());
  CHECK(t->truncated);
  CHECK(t->addresses.empty());
}

TEST_CASE("dns: parse_response rejects what is not the answer to the query") {
  std::string good = a_answer(7, "a.test", {"10.0.0.1"}, 5);
  auto fails = [](std::string_view pkt, uint16_t id, std::string_view name, uint16_t type,
                  std::string_view why) {
    auto r = parse_response(pkt, id, name, type);
    CAPTURE(why);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == Code::InvalidArgument);
    CHECK(r.error().message().find(why) != std::string::npos);
  };
  fails(good.substr(0, 11), 7, "a.test", kTypeA, "shorter than a DNS header");
  fails(good, 8, "a.test", kTypeA, "another id");
  fails(good, 7, "b.test", kTypeA, "another question");
  fails(good, 7, "a.test", kTypeAaaa, "another question");
  std::string query = good;
  query[2] = 0x01;  // QR clear
  fails(query, 7, "a.test", kTypeA, "not a response");
  std::string opcode = good;
  opcode[2] = static_cast<char>(0x80 | (2 << 3));  // STATUS
  fails(opcode, 7, "a.test", kTypeA, "not a standard query");
  Packet two;
  two.header(7, kNoError, 2, 0).question("a.test", kTypeA).question("a.test", kTypeA);
  fails(two.b, 7, "a.test", kTypeA, "2 questions");

  Packet short_a;
  short_a.header(7, kNoError, 1, 1).question("a.test", kTypeA);
  short_a.pointer(12).rr(kTypeA, 5, ipv4("10.0.0.1").substr(0, 3));
  fails(short_a.b, 7, "a.test", kTypeA, "A record with 3 bytes");
  Packet long_aaaa;
  long_aaaa.header(7, kNoError, 1, 1).question("a.test", kTypeAaaa);
  long_aaaa.pointer(12).rr(kTypeAaaa, 5, ipv6("::1") + "x");
  fails(long_aaaa.b, 7, "a.test", kTypeAaaa, "AAAA record with 17 bytes");
}

TEST_CASE("dns: every truncation of a valid answer fails cleanly, none crashes") {
  // The CNAME-chain answer, plus an SOA, cut at every length.
  Packet p;
  p.header(42, kNoError, 1, 2).question("www.example.com", kTypeA);
  p.pointer(12).rr(kTypeCname, 300, wire_name("e1.example.net"));
  p.name("e1.example.net").rr(kTypeA, 200, ipv4("192.0.2.7"));
  REQUIRE(parse_response(p.b, 42, "www.example.com", kTypeA).has_value());
  for (size_t n = 0; n < p.size(); ++n) {
    CAPTURE(n);
    CHECK_FALSE(parse_response(p.b.substr(0, n), 42, "www.example.com", kTypeA).has_value());
  }
}

TEST_CASE("dns: compression pointers must point backwards; loops and junk are refused") {
  auto fails = [](const Packet& p, std::string_view why) {
    auto r = parse_response(p.b, 1, "a.test", kTypeA);
    CAPTURE(why);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message().find(why) != std::string::npos);
  };
  {
    Packet p;  // an answer's owner pointing at itself
    p.header(1, kNoError, 1, 1).question("a.test", kTypeA);
    p.pointer(static_cast<uint16_t>(p.size())).rr(kTypeA, 5, ipv4("1.2.3.4"));
    fails(p, "does not point backwards");
  }
  {
    Packet p;  // a label, then a pointer back to that label: a loop through the run
    p.header(1, kNoError, 1, 1).question("a.test", kTypeA);
    auto at = static_cast<uint16_t>(p.size());
    p.name("x", at).rr(kTypeA, 5, ipv4("1.2.3.4"));
    fails(p, "does not point backwards");
  }
  {
    Packet p;  // two names pointing at each other: the second points forward
    p.header(1, kNoError, 1, 2).question("a.test", kTypeA);
    auto first = static_cast<uint16_t>(p.size());
    p.name("x", static_cast<uint16_t>(first + 4 + 10 + 4)).rr(kTypeA, 5, ipv4("1.2.3.4"));
    p.name("y", first).rr(kTypeA, 5, ipv4("1.2.3.5"));
    fails(p, "does not point backwards");
  }
  {
    Packet p;  // a pointer into the header
    p.header(1, kNoError, 1, 1).question("a.test", kTypeA);
    p.pointer(4).rr(kTypeA, 5, ipv4("1.2.3.4"));
    fails(p, "points into the header");
  }
  {
    Packet p;  // reserved label types 0x40 and 0x80
    p.header(1, kNoError, 1, 1).question("a.test", kTypeA);
    p.u8(0x41).raw("x").u8(0).rr(kTypeA, 5, ipv4("1.2.3.4"));
    fails(p, "reserved type");
  }
  {
    Packet p;  // a name over 255 bytes, built from pointers to a long earlier name
    p.header(1, kNoError, 1, 2).question("a.test", kTypeA);
    auto base = static_cast<uint16_t>(p.size());
    std::string l(60, 'l');
    p.name(l + "." + l + "." + l).rr(kTypeA, 5, ipv4("1.2.3.4"));  // 184 bytes: fine
    p.name(l + "." + l, base).rr(kTypeA, 5, ipv4("1.2.3.5"));      // 122 + 184: too long
    fails(p, "longer than 255");
  }
  {
    Packet p;  // a dot inside a label
    p.header(1, kNoError, 1, 1).question("a.test", kTypeA);
    p.u8(3).raw("a.b").u8(0).rr(kTypeA, 5, ipv4("1.2.3.4"));
    fails(p, "holds a dot");
  }
  {
    Packet p;  // a CNAME loop a → b → a
    p.header(1, kNoError, 1, 2).question("a.test", kTypeA);
    p.pointer(12).rr(kTypeCname, 5, wire_name("b.test"));
    p.name("b.test").rr(kTypeCname, 5, wire_name("a.test"));
    fails(p, "CNAME chain longer than 16");
  }
  {
    Packet p;  // a chain of 17 CNAMEs
    p.header(1, kNoError, 1, 17).question("a.test", kTypeA);
    p.pointer(12).rr(kTypeCname, 5, wire_name("c1.test"));
    for (int i = 1; i < 17; ++i)
      p.name("c" + std::to_string(i) + ".test")
          .rr(kTypeCname, 5, wire_name("c" + std::to_string(i + 1) + ".test"));
    fails(p, "CNAME chain longer than 16");
  }
  {
    Packet p;  // a CNAME whose data holds more than one name
    p.header(1, kNoError, 1, 1).question("a.test", kTypeA);
    p.pointer(12).rr(kTypeCname, 5, wire_name("b.test") + "junk");
    fails(p, "not exactly one name");
  }
  {
    Packet p;  // a record length past the end
    p.header(1, kNoError, 1, 1).question("a.test", kTypeA);
    p.pointer(12).u16(kTypeA).u16(kClassIn).u32(5).u16(400).raw(ipv4("1.2.3.4"));
    fails(p, "runs past the end");
  }
}

TEST_CASE("dns: random garbage and random mutations of answers never crash the parser") {
  std::mt19937 rng(20240601);  // seeded: the same inputs every run
  std::string base = a_answer(0x1234, "ext.example.test", {"10.0.0.1", "10.0.0.2"}, 30);
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string pkt;
    if (i % 2 == 0) {
      pkt.resize(rng() % 600);
      for (char& c : pkt)
        c = static_cast<char>(rng());
      if (pkt.size() >= 4) {  // often look like the answer, so that parsing gets deep
        pkt[0] = 0x12;
        pkt[1] = 0x34;
        pkt[2] = static_cast<char>(0x80);
        pkt[3] = 0;
      }
    } else {
      pkt = base;
      for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k)
        pkt[rng() % pkt.size()] = static_cast<char>(rng());
    }
    for (uint16_t type : {kTypeA, kTypeAaaa}) {
      auto r = parse_response(pkt, 0x1234, "ext.example.test", type);
      if (!r) continue;
      ++parsed;
      for (const auto& a : r->addresses)
        CHECK(is_ip(a));
      if (r->ttl) CHECK(*r->ttl <= 0x7fffffffu);
    }
  }
  CHECK(parsed > 0);  // mutations that leave the answer valid do parse
}

// ---------------------------------------------------------------------------------------
// Files

TEST_CASE("dns: resolv.conf: nameservers (at most 3, ports for tests), options, defaults") {
  ResolvConf c = parse_resolv_conf(
      "# a comment\n"
      "; another\n"
      "search example.com\n"
      "nameserver 10.0.0.53\n"
      "nameserver   127.0.0.1:5353   # trailing words are ignored\n"
      "nameserver [::1]:5354\n"
      "nameserver 10.0.0.54\n"  // the fourth: glibc reads three
      "nameserver not-an-ip\n"
      "options ndots:2 timeout:3 attempts:4 rotate\n");
  REQUIRE(c.nameservers.size() == 3);
  CHECK(c.nameservers[0].to_string() == "10.0.0.53:53");
  CHECK(c.nameservers[1].to_string() == "127.0.0.1:5353");
  CHECK(c.nameservers[2].to_string() == "[::1]:5354");
  CHECK(c.timeout_ms == 3000);
  CHECK(c.attempts == 4);

  ResolvConf empty = parse_resolv_conf("");
  REQUIRE(empty.nameservers.size() == 1);
  CHECK(empty.nameservers[0].to_string() == "127.0.0.1:53");  // glibc's default
  CHECK(empty.timeout_ms == 5000);
  CHECK(empty.attempts == 2);

  ResolvConf clamped = parse_resolv_conf(
      "nameserver 1.2.3.4:0\nnameserver 1.2.3.4:70000\nnameserver fe80::1:53\n"
      "options timeout:99 attempts:0\n");
  // Bad ports are skipped; "fe80::1:53" is an IPv6 address, not IP:PORT.
  REQUIRE(clamped.nameservers.size() == 1);
  CHECK(clamped.nameservers[0].to_string() == "[fe80::1:53]:53");
  CHECK(clamped.timeout_ms == 30'000);
  CHECK(clamped.attempts == 1);
}

TEST_CASE("dns: hosts file: names and aliases, comments, IPv4 first") {
  HostsTable t = parse_hosts(
      "127.0.0.1 localhost\n"
      "::1 localhost ip6-localhost   # comment\n"
      "# 10.9.9.9 commented.example\n"
      "10.0.0.5\tDB.Internal db\n"
      "not-an-ip somename\n"
      "10.0.0.6 db.internal.\n"
      "10.0.0.5 db.internal\n");
  REQUIRE(t.count("localhost"));
  CHECK(t.at("localhost") == std::vector<std::string>{"127.0.0.1", "::1"});
  CHECK(t.at("ip6-localhost") == std::vector<std::string>{"::1"});
  CHECK(t.at("db.internal") == std::vector<std::string>{"10.0.0.5", "10.0.0.6"});
  CHECK(t.at("db") == std::vector<std::string>{"10.0.0.5"});
  CHECK_FALSE(t.count("commented.example"));
  CHECK_FALSE(t.count("somename"));
}

// ---------------------------------------------------------------------------------------
// A fake DNS server on 127.0.0.1: UDP and TCP on one port, on a thread of its own, answering
// each query from a script. The script sees the query's id, name and type and returns the
// packets to send back (none: stay silent).

struct Query {
  uint16_t id = 0;
  std::string name;
  uint16_t type = 0;
  bool tcp = false;
};

class FakeDns {
 public:
  using Script = std::function<std::vector<std::string>(const Query&)>;

  explicit FakeDns(Script script) : script_(std::move(script)) {
    // UDP and TCP on one port: the UDP port the kernel picks may be taken for TCP (by any
    // connection's local port), so pick again until both binds hold.
    for (int attempt = 0;; ++attempt) {
      REQUIRE(attempt < 50);
      udp_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      REQUIRE(udp_ >= 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      REQUIRE(::bind(udp_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
      socklen_t len = sizeof a;
      REQUIRE(::getsockname(udp_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
      port_ = ntohs(a.sin_port);
      tcp_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(tcp_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(tcp_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) break;
      ::close(tcp_);
      ::close(udp_);
    }
    REQUIRE(::listen(tcp_, 16) == 0);
    REQUIRE(::pipe(stop_) == 0);
    thread_ = std::thread([this] { serve(); });
  }

  ~FakeDns() {
    char c = 'x';
    (void)!::write(stop_[1], &c, 1);
    thread_.join();
    ::close(udp_);
    ::close(tcp_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int queries() const { return udp_queries + tcp_queries; }
  std::vector<Query> seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

  std::atomic<int> udp_queries{0};
  std::atomic<int> tcp_queries{0};

 private:
  static std::optional<Query> parse_query(std::string_view q) {
    if (q.size() < 17) return std::nullopt;
    Query out;
    out.id = static_cast<uint16_t>((static_cast<uint8_t>(q[0]) << 8) | static_cast<uint8_t>(q[1]));
    size_t p = 12;
    while (p < q.size() && q[p] != 0) {
      size_t len = static_cast<uint8_t>(q[p]);
      if (p + 1 + len >= q.size()) return std::nullopt;
      if (!out.name.empty()) out.name += '.';
      out.name.append(q.substr(p + 1, len));
      p += 1 + len;
    }
    if (p + 5 > q.size()) return std::nullopt;
    out.type = static_cast<uint16_t>((static_cast<uint8_t>(q[p + 1]) << 8) |
                                     static_cast<uint8_t>(q[p + 2]));
    return out;
  }

  std::vector<std::string> answer(std::string_view bytes, bool tcp) {
    auto q = parse_query(bytes);
    if (!q) return {};
    q->tcp = tcp;
    (tcp ? tcp_queries : udp_queries)++;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(*q);
    }
    return script_(*q);
  }

  void serve() {
    for (;;) {
      pollfd fds[3] = {{udp_, POLLIN, 0}, {tcp_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(fds, 3, -1) < 0) continue;
      if (fds[2].revents) return;
      if (fds[0].revents & POLLIN) {
        char buf[4096];
        sockaddr_storage from{};
        socklen_t len = sizeof from;
        ssize_t n = ::recvfrom(udp_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n > 0)
          for (const auto& reply : answer(std::string_view(buf, static_cast<size_t>(n)), false))
            ::sendto(udp_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
      }
      if (fds[1].revents & POLLIN) serve_tcp();
    }
  }

  // One query per connection, read with a short deadline (a test's client is on loopback).
  void serve_tcp() {
    int c = ::accept4(tcp_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    std::string in;
    while (true) {
      pollfd pfd{c, POLLIN, 0};
      if (::poll(&pfd, 1, 2000) <= 0) break;
      char buf[4096];
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      if (in.size() >= 2) {
        size_t need = (static_cast<uint8_t>(in[0]) << 8) | static_cast<uint8_t>(in[1]);
        if (in.size() >= 2 + need) {
          for (const auto& reply : answer(std::string_view(in).substr(2, need), true)) {
            std::string framed;
            framed.push_back(static_cast<char>(reply.size() >> 8));
            framed.push_back(static_cast<char>(reply.size() & 0xff));
            framed += reply;
            (void)!::write(c, framed.data(), framed.size());
          }
          break;
        }
      }
    }
    ::close(c);
  }

  Script script_;
  int udp_ = -1, tcp_ = -1;
  int stop_[2] = {-1, -1};
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::vector<Query> seen_;
  std::thread thread_;
};

// Answers A queries for `name` with `ips` (TTL `ttl`), AAAA with no record, others NXDOMAIN.
std::vector<std::string> answer_a(const Query& q, const std::string& name,
                                  const std::vector<const char*>& ips, uint32_t ttl) {
  if (q.name != name) {
    Packet p;
    p.header(q.id, kNxDomain, 1, 0).question(q.name, q.type);
    return {p.b};
  }
  if (q.type == kTypeA) return {a_answer(q.id, q.name, ips, ttl)};
  Packet p;
  p.header(q.id, kNoError, 1, 0).question(q.name, q.type);
  return {p.b};
}

std::string write_file(TempDir& dir, const std::string& name, const std::string& text) {
  std::string path = dir.file(name);
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

std::string unused_udp_port_address() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(s);  // nothing listens there now: a query gets ICMP port unreachable
  return "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
}

// Runs one lookup to completion.
std::optional<Resolution> lookup(loop::Loop& loop, Resolver& resolver, const std::string& name,
                                 std::chrono::milliseconds within = 10s) {
  std::optional<Resolution> got;
  DnsQueryPtr q = resolver.resolve(name, [&](Resolution r) { got = std::move(r); });
  CHECK_FALSE(got.has_value());  // never inside resolve()
  run_until(
      loop, [&] { return got.has_value(); }, within);
  return got;
}

ResolverOptions options(TempDir& dir, const std::string& resolv_conf, uint64_t timeout_ms = 0,
                        int attempts = 0) {
  ResolverOptions o;
  o.resolv_conf = write_file(dir, "resolv.conf", resolv_conf);
  o.hosts = write_file(dir, "hosts", "10.77.0.1 from-hosts.test\n");
  o.timeout_ms = timeout_ms;
  o.attempts = attempts;
  return o;
}

// ---------------------------------------------------------------------------------------
// Resolver

TEST_CASE("dns: Resolver asks A and AAAA and reports both, A first, with the smaller TTL") {
  TempDir dir;
  FakeDns server([](const Query& q) -> std::vector<std::string> {
    if (q.type == kTypeA) return {a_answer(q.id, q.name, {"10.0.0.1", "10.0.0.2"}, 70)};
    Packet p;
    p.header(q.id, kNoError, 1, 1).question(q.name, kTypeAaaa);
    p.pointer(12).rr(kTypeAaaa, 40, ipv6("fd00::1"));
    return {p.b};
  });
  loop::Loop loop;
  {
    Resolver resolver(loop, options(dir, "nameserver " + server.address() + "\n"));
    auto r = lookup(loop, resolver, "svc.example.test");
    REQUIRE(r.has_value());
    CHECK(r->status.is_ok());
    CHECK(r->addresses == std::vector<std::string>{"10.0.0.1", "10.0.0.2", "fd00::1"});
    CHECK(r->ttl_s == 40u);
    CHECK_FALSE(r->from_hosts);
    auto seen = server.seen();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].name == "svc.example.test");
    CHECK(seen[0].id != seen[1].id);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("dns: Resolver: NXDOMAIN is an answer without address; the hosts file comes first") {
  TempDir dir;
  FakeDns server([](const Query& q) { return answer_a(q, "only.test", {"10.0.0.1"}, 5); });
  loop::Loop loop;
  {
    Resolver resolver(loop, options(dir, "nameserver " + server.address() + "\n"));
    auto missing = lookup(loop, resolver, "missing.test");
    REQUIRE(missing.has_value());
    CHECK(missing->status.is_ok());
    CHECK(missing->addresses.empty());

    int before = server.queries();
    auto hosts = lookup(loop, resolver, "FROM-HOSTS.test");
    REQUIRE(hosts.has_value());
    CHECK(hosts->status.is_ok());
    CHECK(hosts->from_hosts);
    CHECK(hosts->addresses == std::vector<std::string>{"10.77.0.1"});
    CHECK_FALSE(hosts->ttl_s.has_value());
    CHECK(server.queries() == before);  // no query for it

    auto ip = lookup(loop, resolver, "10.1.2.3");
    REQUIRE(ip.has_value());
    CHECK(ip->addresses == std::vector<std::string>{"10.1.2.3"});
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("dns: Resolver fails over to the next nameserver") {
  TempDir dir;
  FakeDns good([](const Query& q) { return answer_a(q, "x.test", {"10.0.0.9"}, 5); });
  loop::Loop loop;
  {
    SUBCASE("from a silent one, after the timeout") {
      FakeDns silent([](const Query&) { return std::vector<std::string>{}; });
      Resolver resolver(
          loop,
          options(dir, "nameserver " + silent.address() + "\nnameserver " + good.address() + "\n",
                  200, 1));
      auto start = std::chrono::steady_clock::now();
      auto r = lookup(loop, resolver, "x.test");
      REQUIRE(r.has_value());
      CHECK(r->status.is_ok());
      CHECK(r->addresses == std::vector<std::string>{"10.0.0.9"});
      CHECK(silent.queries() == 2);  // A and AAAA, then silence
      CHECK(std::chrono::steady_clock::now() - start >= 190ms);
    }
    SUBCASE("from one answering SERVFAIL or REFUSED, at once") {
      for (uint16_t flags : {kServFail, kRefused}) {
        FakeDns failing([flags](const Query& q) {
          Packet p;
          p.header(q.id, flags, 1, 0).question(q.name, q.type);
          return std::vector<std::string>{p.b};
        });
        Resolver resolver(loop, options(dir,
                                        "nameserver " + failing.address() + "\nnameserver " +
                                            good.address() + "\n",
                                        5000, 1));
        auto start = std::chrono::steady_clock::now();
        auto r = lookup(loop, resolver, "x.test");
        REQUIRE(r.has_value());
        CHECK(r->status.is_ok());
        CHECK(r->addresses == std::vector<std::string>{"10.0.0.9"});
        CHECK(std::chrono::steady_clock::now() - start < 4s);  // not the 5 s timeout
      }
    }
    SUBCASE("from a port nobody listens on (ICMP port unreachable), at once") {
      Resolver resolver(loop, options(dir,
                                      "nameserver " + unused_udp_port_address() + "\nnameserver " +
                                          good.address() + "\n",
                                      5000, 1));
      auto start = std::chrono::steady_clock::now();
      auto r = lookup(loop, resolver, "x.test");
      REQUIRE(r.has_value());
      CHECK(r->status.is_ok());
      CHECK(std::chrono::steady_clock::now() - start < 4s);
    }
    SUBCASE("garbage and forged answers are ignored while the real one is awaited") {
      FakeDns noisy([](const Query& q) {
        std::vector<std::string> out;
        out.push_back("garbage");
        std::string wrong_id = a_answer(static_cast<uint16_t>(q.id + 1), q.name, {"6.6.6.6"}, 5);
        out.push_back(wrong_id);
        out.push_back(a_answer(q.id, "other.test", {"6.6.6.7"}, 5));  // another question
        for (auto& a : answer_a(q, "x.test", {"10.0.0.10"}, 5))
          out.push_back(a);
        return out;
      });
      Resolver resolver(loop, options(dir, "nameserver " + noisy.address() + "\n", 5000, 1));
      auto r = lookup(loop, resolver, "x.test");
      REQUIRE(r.has_value());
      CHECK(r->status.is_ok());
      CHECK(r->addresses == std::vector<std::string>{"10.0.0.10"});
    }
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("dns: Resolver fails when every nameserver fails, after every attempt") {
  TempDir dir;
  loop::Loop loop;
  {
    FakeDns silent([](const Query&) { return std::vector<std::string>{}; });
    Resolver resolver(loop, options(dir, "nameserver " + silent.address() + "\n", 100, 3));
    auto r = lookup(loop, resolver, "x.test");
    REQUIRE(r.has_value());
    CHECK_FALSE(r->status.is_ok());
    CHECK(r->status.message().find("no answer from " + silent.address() + " within 100 ms") !=
          std::string::npos);
    CHECK(silent.queries() == 6);  // 3 attempts × (A + AAAA)

    auto refused =
        lookup(loop,
               *std::make_unique<Resolver>(
                   loop, options(dir, "nameserver " + unused_udp_port_address() + "\n", 100, 2)),
               "x.test");
    REQUIRE(refused.has_value());
    CHECK_FALSE(refused->status.is_ok());
    CHECK(refused->status.message().find("connection refused") != std::string::npos);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("dns: Resolver: a family that gets no answer does not fail the lookup") {
  TempDir dir;
  FakeDns no_aaaa([](const Query& q) -> std::vector<std::string> {
    if (q.type == kTypeAaaa) return {};  // a middlebox that drops AAAA queries
    return {a_answer(q.id, q.name, {"10.0.0.3"}, 5)};
  });
  loop::Loop loop;
  {
    Resolver resolver(loop, options(dir, "nameserver " + no_aaaa.address() + "\n", 100, 2));
    auto r = lookup(loop, resolver, "x.test");
    REQUIRE(r.has_value());
    CHECK(r->status.is_ok());
    CHECK(r->addresses == std::vector<std::string>{"10.0.0.3"});
    CHECK(no_aaaa.udp_queries == 3);  // A once; AAAA on both attempts
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("dns: Resolver asks again over TCP when the UDP answer is truncated") {
  TempDir dir;
  std::vector<const char*> many;
  std::vector<std::string> storage;
  for (int i = 1; i <= 60; ++i)
    storage.push_back("10.0.1." + std::to_string(i));
  for (const auto& s : storage)
    many.push_back(s.c_str());
  FakeDns server([&](const Query& q) -> std::vector<std::string> {
    if (q.type != kTypeA) return answer_a(q, q.name, {}, 5);
    if (!q.tcp) {
      Packet p;
      p.header(q.id, kTruncated, 1, 0).question(q.name, q.type);
      return {p.b};
    }
    return {a_answer(q.id, q.name, many, 30)};
  });
  loop::Loop loop;
  {
    Resolver resolver(loop, options(dir, "nameserver " + server.address() + "\n", 2000, 1));
    auto r = lookup(loop, resolver, "big.test");
    REQUIRE(r.has_value());
    CHECK(r->status.is_ok());
    CHECK(r->addresses.size() == 60);
    CHECK(r->addresses.front() == "10.0.1.1");
    CHECK(server.tcp_queries == 1);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("dns: destroying a query cancels it: no callback, sockets closed") {
  TempDir dir;
  FakeDns silent([](const Query&) { return std::vector<std::string>{}; });
  loop::Loop loop;
  {
    // Without the cancel, each lookup would report its failure after 100 ms.
    Resolver resolver(loop, options(dir, "nameserver " + silent.address() + "\n", 100, 1));
    bool called = false;
    DnsQueryPtr q = resolver.resolve("x.test", [&](Resolution) { called = true; });
    CHECK(run_until(
        loop, [&] { return silent.queries() == 2; }, 10s));
    q.reset();  // waiting for the answers
    CHECK_FALSE(run_until(
        loop, [&] { return called; }, 300ms));

    bool called2 = false;
    DnsQueryPtr q2 = resolver.resolve("x.test", [&](Resolution) { called2 = true; });
    q2.reset();  // before its first try started
    DnsQueryPtr q3 = resolver.resolve("from-hosts.test", [&](Resolution) { called2 = true; });
    q3.reset();  // an answer from the hosts file, not delivered yet
    CHECK_FALSE(run_until(
        loop, [&] { return called2; }, 300ms));
    CHECK(silent.queries() == 2);
  }
  CHECK(loop.close().is_ok());
}

// ---------------------------------------------------------------------------------------
// Registry: DNS names of service entries

Endpoint dns_endpoint(const std::string& name, config::Resolution resolution) {
  Endpoint ep;
  ep.host = "ext.example.test";
  ep.ns = "default";
  ep.address = name;
  ep.source = "service_entry/default/ext";
  ep.resolution = resolution;
  return ep;
}

std::vector<std::string> addresses_of(const Registry& r) {
  std::vector<std::string> out;
  for (const auto& e : r.endpoints())
    out.push_back(e.address);
  return out;
}

TEST_CASE("registry: dns names become their addresses, re-resolved when the TTL runs out") {
  TempDir dir;
  std::mutex mu;
  std::vector<const char*> ips = {"127.0.0.2"};
  bool fail = false;
  FakeDns server([&](const Query& q) -> std::vector<std::string> {
    std::lock_guard<std::mutex> lock(mu);
    if (fail) {
      Packet p;
      p.header(q.id, kServFail, 1, 0).question(q.name, q.type);
      return {p.b};
    }
    return answer_a(q, "ext.example.test", ips, 1);  // TTL 1 s: the floor
  });
  loop::Loop loop;
  {
    int changes = 0;
    Registry r(
        loop, [&] { ++changes; }, options(dir, "nameserver " + server.address() + "\n", 200, 1));
    r.set_config_endpoints({dns_endpoint("ext.example.test", config::Resolution::Dns)});
    // Until the first answer, the name itself (the compiler skips it with a warning).
    CHECK(addresses_of(r) == std::vector<std::string>{"ext.example.test"});
    CHECK(run_until(
        loop, [&] { return addresses_of(r) == std::vector<std::string>{"127.0.0.2"}; }, 5s));
    CHECK(r.endpoints()[0].hostname == "ext.example.test");
    CHECK(r.endpoints()[0].key() == "ext.example.test 127.0.0.2:0");
    CHECK(run_until(
        loop, [&] { return changes >= 1; }, 1s));
    int base = changes;

    // The answer changes: seen at the next refresh (TTL 1 s), and OnChange follows.
    {
      std::lock_guard<std::mutex> lock(mu);
      ips = {"127.0.0.3", "127.0.0.4"};
    }
    auto changed_at = std::chrono::steady_clock::now();
    CHECK(run_until(
        loop,
        [&] {
          return addresses_of(r) == std::vector<std::string>{"127.0.0.3", "127.0.0.4"} &&
                 changes == base + 1;
        },
        5s));
    CHECK(std::chrono::steady_clock::now() - changed_at < 3s);

    // Same answer again: no change, no OnChange.
    int queries = server.queries();
    CHECK(run_until(
        loop, [&] { return server.queries() >= queries + 2; }, 5s));
    CHECK_FALSE(run_until(
        loop, [&] { return changes != base + 1; }, 50ms));

    // Failures keep the last good addresses.
    {
      std::lock_guard<std::mutex> lock(mu);
      fail = true;
    }
    queries = server.queries();
    CHECK(run_until(
        loop, [&] { return server.queries() >= queries + 4; }, 10s));  // two failed lookups
    CHECK(addresses_of(r) == std::vector<std::string>{"127.0.0.3", "127.0.0.4"});
    CHECK(changes == base + 1);

    // The server recovers with another address: picked up at the retry.
    {
      std::lock_guard<std::mutex> lock(mu);
      fail = false;
      ips = {"127.0.0.5"};
    }
    CHECK(run_until(
        loop, [&] { return addresses_of(r) == std::vector<std::string>{"127.0.0.5"}; }, 10s));

    // A name no endpoint needs any more is no longer looked up. (Its lookup has just ended,
    // so none is in flight, and a live name would be asked again within its 1 s TTL.)
    r.set_config_endpoints({});
    CHECK(r.endpoints().empty());
    queries = server.queries();
    CHECK_FALSE(run_until(
        loop, [&] { return server.queries() > queries; }, 1500ms));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("registry: dns_round_robin keeps one address while the answers still hold it") {
  TempDir dir;
  std::mutex mu;
  std::vector<const char*> ips = {"10.0.0.1", "10.0.0.2"};
  FakeDns server([&](const Query& q) {
    std::lock_guard<std::mutex> lock(mu);
    return answer_a(q, "rr.example.test", ips, 1);
  });
  loop::Loop loop;
  {
    Registry r(
        loop, [] {}, options(dir, "nameserver " + server.address() + "\n", 200, 1));
    r.set_config_endpoints({dns_endpoint("rr.example.test", config::Resolution::DnsRoundRobin)});
    CHECK(run_until(
        loop, [&] { return addresses_of(r) == std::vector<std::string>{"10.0.0.1"}; }, 5s));

    // The server rotates its answer: the endpoint stays.
    {
      std::lock_guard<std::mutex> lock(mu);
      ips = {"10.0.0.2", "10.0.0.1"};
    }
    int queries = server.queries();
    CHECK(run_until(
        loop, [&] { return server.queries() >= queries + 2; }, 5s));
    CHECK(addresses_of(r) == std::vector<std::string>{"10.0.0.1"});

    // The address goes away: the first of the new answer.
    {
      std::lock_guard<std::mutex> lock(mu);
      ips = {"10.0.0.7", "10.0.0.2"};
    }
    CHECK(run_until(
        loop, [&] { return addresses_of(r) == std::vector<std::string>{"10.0.0.7"}; }, 5s));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("registry: IP endpoints of dns entries are used as they are, without lookups") {
  TempDir dir;
  FakeDns server([](const Query& q) { return answer_a(q, "x", {}, 5); });
  loop::Loop loop;
  {
    Registry r(
        loop, [] {}, options(dir, "nameserver " + server.address() + "\n", 200, 1));
    r.set_config_endpoints({dns_endpoint("10.2.3.4", config::Resolution::Dns)});
    CHECK(addresses_of(r) == std::vector<std::string>{"10.2.3.4"});
    CHECK(r.endpoints()[0].hostname.empty());
    CHECK_FALSE(run_until(
        loop, [&] { return server.queries() > 0; }, 100ms));
  }
  CHECK(loop.close().is_ok());
}

}  // namespace
}  // namespace meshbox::dns
