// Tests for core/loop/address.h: parsing "host:port" forms and printing them back.
#include "core/loop/address.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <string>

namespace meshbox::loop {
namespace {

TEST_CASE("address: IPv4 host and port") {
  auto a = Address::parse("127.0.0.1:80");
  REQUIRE(a.has_value());
  CHECK(a->family() == AF_INET);
  CHECK(a->port() == 80);
  CHECK(a->ip() == "127.0.0.1");
  CHECK(a->to_string() == "127.0.0.1:80");
  CHECK(a->len() == sizeof(sockaddr_in));
  const auto* sin = reinterpret_cast<const sockaddr_in*>(a->sa());
  CHECK(sin->sin_family == AF_INET);
  CHECK(ntohs(sin->sin_port) == 80);
  CHECK(ntohl(sin->sin_addr.s_addr) == 0x7f000001u);
}

TEST_CASE("address: bracketed IPv6") {
  auto a = Address::parse("[::1]:8080");
  REQUIRE(a.has_value());
  CHECK(a->family() == AF_INET6);
  CHECK(a->port() == 8080);
  CHECK(a->ip() == "::1");
  CHECK(a->to_string() == "[::1]:8080");
  CHECK(a->len() == sizeof(sockaddr_in6));

  auto b = Address::parse("[2001:db8::10]:443");
  REQUIRE(b.has_value());
  CHECK(b->to_string() == "[2001:db8::10]:443");
}

TEST_CASE("address: an empty host means every interface") {
  auto a = Address::parse(":9000");
  REQUIRE(a.has_value());
  CHECK(a->family() == AF_INET);
  CHECK(a->ip() == "0.0.0.0");
  CHECK(a->port() == 9000);
  CHECK(a->to_string() == "0.0.0.0:9000");
}

TEST_CASE("address: port edges") {
  auto zero = Address::parse("127.0.0.1:0");
  REQUIRE(zero.has_value());
  CHECK(zero->port() == 0);
  auto top = Address::parse("127.0.0.1:65535");
  REQUIRE(top.has_value());
  CHECK(top->port() == 65535);
}

TEST_CASE("address: bad input is an InvalidArgument error that names the input") {
  for (const char* bad : {"x", "1.2.3.4:99999", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1",
                          "1.2.3.4:+80", "1.2.3.4:80x", "1.2.3.4: 80", "1.2.3.4:99999999999999", "",
                          ":", "[::1]", "[::1]80", "[::1", "[::1]:", "[::1]:abc"}) {
    CAPTURE(bad);
    auto a = Address::parse(bad);
    REQUIRE_FALSE(a.has_value());
    CHECK(a.error().code() == Code::InvalidArgument);
    CHECK(a.error().message().find(std::string("'") + bad + "'") != std::string::npos);
  }
}

TEST_CASE("address: a name is resolved (localhost, from /etc/hosts)") {
  auto a = Address::parse("localhost:1234");
  REQUIRE(a.has_value());
  CHECK(a->port() == 1234);
  CHECK((a->ip() == "127.0.0.1" || a->ip() == "::1"));
}

TEST_CASE("address: set_port and from_sockaddr round trip") {
  auto v4 = Address::parse("10.1.2.3:1");
  REQUIRE(v4.has_value());
  Address a = *v4;
  a.set_port(65000);
  CHECK(a.to_string() == "10.1.2.3:65000");
  Address copy = Address::from_sockaddr(a.sa());
  CHECK(copy.to_string() == "10.1.2.3:65000");
  CHECK(copy.len() == a.len());

  auto v6 = Address::parse("[fe80::1]:2");
  REQUIRE(v6.has_value());
  Address b = *v6;
  b.set_port(3);
  Address copy6 = Address::from_sockaddr(b.sa());
  CHECK(copy6.family() == AF_INET6);
  CHECK(copy6.to_string() == "[fe80::1]:3");
}

}  // namespace
}  // namespace meshbox::loop
