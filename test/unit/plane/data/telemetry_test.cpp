// Tests for plane/data/telemetry.h: response flag sets as Envoy prints them, and the
// x-meshbox-peer header (metadata exchange) both ways, with hostile values.
#include "plane/data/telemetry.h"

#include <doctest/doctest.h>

namespace meshbox::data {
namespace {

TEST_CASE("response flags print as Envoy's short names, comma-joined, '-' when none") {
  ResponseFlags f;
  CHECK(f.to_string() == "-");
  CHECK(f.empty());
  f.add(ResponseFlag::None);
  CHECK(f.empty());
  f.add(ResponseFlag::UpstreamConnectFailure);
  CHECK(f.to_string() == "UF");
  f.add(ResponseFlag::DelayInjected);
  f.add(ResponseFlag::UpstreamConnectFailure);
  CHECK(f.to_string() == "UF,DI");
  CHECK(f.has(ResponseFlag::DelayInjected));
  CHECK_FALSE(f.has(ResponseFlag::RateLimited));
  f.clear();
  CHECK(f.to_string() == "-");
}

TEST_CASE("peer metadata survives the header both ways, separators and controls escaped") {
  PeerMetadata m{"reviews-v2", "default", "re;v%iews", "v\n2", "spiffe://x"};
  std::string v = encode_peer(m);
  CHECK(v == "reviews-v2;default;re%3Bv%25iews;v%0A2");
  PeerMetadata back;
  REQUIRE(decode_peer(v, back));
  CHECK(back.workload == "reviews-v2");
  CHECK(back.ns == "default");
  CHECK(back.app == "re;v%iews");
  CHECK(back.version == "v\n2");
  CHECK(back.principal.empty());  // never taken from a header: only from mTLS
  REQUIRE(decode_peer(";;;", back));
  CHECK(back.workload.empty());
}

TEST_CASE("a malformed peer header is refused whole") {
  PeerMetadata out;
  for (std::string_view bad :
       {"", "a;b;c", "a;b;c;d;e", "a%;b;c;d", "a%4;b;c;d", "a%zz;b;c;d", "a;b;c;%"}) {
    CAPTURE(bad);
    CHECK_FALSE(decode_peer(bad, out));
    CHECK(out.workload.empty());
  }
  std::string huge(300, 'x');
  CHECK_FALSE(decode_peer(huge + ";b;c;d", out));
}

}  // namespace
}  // namespace meshbox::data
