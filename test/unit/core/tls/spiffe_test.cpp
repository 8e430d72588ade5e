// Tests for core/tls/spiffe.h: SPIFFE IDs as the spec allows them, and why the others are
// refused (scheme, trust domain characters, userinfo, port, path segments, query, fragment,
// percent-encoding, length).
#include "core/tls/spiffe.h"

#include <doctest/doctest.h>

#include <string>

namespace meshbox::tls {
namespace {

TEST_CASE("spiffe: valid IDs parse into trust domain and path") {
  auto id = parse_spiffe_id("spiffe://cluster.local/ns/default/sa/bookinfo-reviews");
  REQUIRE(id);
  CHECK(id->trust_domain == "cluster.local");
  CHECK(id->path == "/ns/default/sa/bookinfo-reviews");
  CHECK(id->str() == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews");

  auto bare = parse_spiffe_id("spiffe://example.org");
  REQUIRE(bare);
  CHECK(bare->trust_domain == "example.org");
  CHECK(bare->path.empty());

  for (const char* ok : {"spiffe://a_b-c.9/Path.With-Mixed_Case/x", "spiffe://td/a/b/c/d",
                         "spiffe://td/...", "spiffe://1.2.3.4/x"}) {
    CAPTURE(ok);
    CHECK(parse_spiffe_id(ok));
  }
}

TEST_CASE("spiffe: bad IDs are refused with the reason") {
  struct Case {
    std::string id;
    const char* why;  // a piece of the message
  };
  const Case cases[] = {
      {"", "does not start with \"spiffe://\""},
      {"http://td/x", "does not start with \"spiffe://\""},
      {"spiffe:/td/x", "does not start with \"spiffe://\""},
      {"SPIFFE://td/x", "lowercase"},
      {"spiffe://", "trust domain is missing"},
      {"spiffe:///x", "trust domain is missing"},
      {"spiffe://Cluster.local/x", "uppercase"},
      {"spiffe://td:8080/x", "port"},
      {"spiffe://user@td/x", "userinfo"},
      {"spiffe://t d/x", "' '"},
      {"spiffe://td/x?y=1", "query"},
      {"spiffe://td/x#frag", "fragment"},
      {"spiffe://td/", "trailing slash"},
      {"spiffe://td/a/", "trailing slash"},
      {"spiffe://td//a", "empty segment"},
      {"spiffe://td/a/./b", "\".\" or \"..\""},
      {"spiffe://td/a/..", "\".\" or \"..\""},
      {"spiffe://td/a%20b", "percent-encoded"},
      {"spiffe://td/a b", "' '"},
      {"spiffe://td/caf\xc3\xa9", "byte 0xc3"},
      {"spiffe://" + std::string(256, 'a') + "/x", "at most 255"},
      {"spiffe://td/" + std::string(2100, 'a'), "at most 2048"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.id);
    auto id = parse_spiffe_id(c.id);
    REQUIRE_FALSE(id);
    CHECK(id.error().code() == Code::InvalidArgument);
    CHECK_MESSAGE(id.error().message().find(c.why) != std::string::npos, id.error().message());
  }
}

TEST_CASE("spiffe: trust domains alone") {
  CHECK(check_trust_domain("cluster.local").is_ok());
  CHECK(check_trust_domain("prod-1.example_org").is_ok());
  CHECK_FALSE(check_trust_domain("").is_ok());
  CHECK_FALSE(check_trust_domain("Example.org").is_ok());
  CHECK_FALSE(check_trust_domain("example.org/x").is_ok());
}

}  // namespace
}  // namespace meshbox::tls
