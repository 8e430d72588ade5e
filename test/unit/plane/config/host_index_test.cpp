// HostIndex (plane/config/host_index.h): how meshbox names hosts.
#include "plane/config/host_index.h"

#include <doctest/doctest.h>

#include "plane/config/decode.h"

namespace meshbox::config {
namespace {

Config make_config() {
  Decoded d = decode_string(R"([[service]]
name = "reviews"
port = 9080

[[service]]
name = "reviews"
namespace = "shop"
port = 9080

[[service_entry]]
name = "ext"
hosts = ["httpbin.org", "*.googleapis.com", "local-name"]
namespace = "edge"
ports = [{ number = 80 }]
)");
  REQUIRE(d.errors.empty());
  return std::move(d.config);
}

TEST_CASE("host_index: a service is NAME.NAMESPACE.svc.DOMAIN_SUFFIX") {
  Config c = make_config();
  HostIndex index(c);
  CHECK(index.fqdn(c.services[0]) == "reviews.default.svc.cluster.local");
  CHECK(index.fqdn(c.services[1]) == "reviews.shop.svc.cluster.local");

  c.mesh.domain_suffix = "mesh.internal";
  HostIndex other(c);
  CHECK(other.fqdn(c.services[0]) == "reviews.default.svc.mesh.internal");
  CHECK(other.find("reviews", "default").service == &c.services[0]);
}

TEST_CASE("host_index: short names resolve in the resource's namespace") {
  Config c = make_config();
  HostIndex index(c);
  CHECK(index.resolve("reviews", "default") == "reviews.default.svc.cluster.local");
  CHECK(index.resolve("reviews", "shop") == "reviews.shop.svc.cluster.local");
  CHECK(index.resolve("Reviews", "shop") == "reviews.shop.svc.cluster.local");
  CHECK(index.resolve("reviews.shop", "default") == "reviews.shop.svc.cluster.local");
  CHECK(index.resolve("reviews.shop.svc", "default") == "reviews.shop.svc.cluster.local");
  // NAME.OTHER expands only when that service exists; otherwise it is a plain name.
  CHECK(index.resolve("example.com", "default") == "example.com");
  CHECK(index.resolve("reviews.nowhere", "default") == "reviews.nowhere");
  CHECK(index.resolve("*.example.com", "default") == "*.example.com");

  CHECK(index.find("reviews", "default").service == &c.services[0]);
  CHECK(index.find("reviews", "shop").service == &c.services[1]);
  CHECK(index.find("reviews.shop", "default").service == &c.services[1]);
  CHECK(index.find("REVIEWS.default.svc.cluster.local", "shop").service == &c.services[0]);
  CHECK_FALSE(index.find("reviews", "other"));
}

TEST_CASE("host_index: service entries, wildcards") {
  Config c = make_config();
  HostIndex index(c);
  const ServiceEntry* se = &c.service_entries[0];
  CHECK(index.find("httpbin.org", "default").entry == se);
  CHECK(index.find("www.googleapis.com", "default").entry == se);
  CHECK(index.find("a.b.googleapis.com", "default").entry == se);
  CHECK_FALSE(index.find("googleapis.com", "default"));
  // A short service-entry host resolves in the entry's namespace.
  CHECK(index.find("local-name", "edge").entry == se);
  CHECK(index.find("local-name.edge", "default").fqdn == "local-name.edge");
  CHECK_FALSE(index.find("local-name", "default"));

  CHECK(index.matches_any("*.googleapis.com", "default"));
  CHECK(index.matches_any("*.storage.googleapis.com", "default"));
  CHECK(index.matches_any("*.org", "default"));
  CHECK(index.matches_any("*.svc.cluster.local", "default"));
  CHECK(index.matches_any("*", "default"));
  CHECK_FALSE(index.matches_any("*.example.com", "default"));

  CHECK(HostIndex::wildcard_match("*", "anything"));
  CHECK(HostIndex::wildcard_match("*.a.com", "x.a.com"));
  CHECK_FALSE(HostIndex::wildcard_match("*.a.com", "a.com"));
  CHECK_FALSE(HostIndex::wildcard_match("*.a.com", "xa.com"));
  CHECK(HostIndex::wildcard_match("a.com", "a.com"));
}

}  // namespace
}  // namespace meshbox::config
