// Tests for plane/control/netns.h's pure parts: the virtual IPs of the mesh's names (stable,
// distinct, in 240.240.0.0/16) and the hosts file a captured instance sees (short names only
// in its own namespace). The namespaces themselves need root: integration_capture.
#include "plane/control/netns.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

namespace meshbox::control {
namespace {

config::Config mesh_config() {
  config::Config c;
  for (const char* name : {"reviews", "ratings", "details"}) {
    config::Service s;
    s.name = name;
    s.ports.push_back(config::Port{});
    c.services.push_back(s);
  }
  config::Service other;
  other.name = "reviews";
  other.ns = "shop";
  c.services.push_back(other);
  config::ServiceEntry se;
  se.name = "ext";
  se.hosts = {"api.example.com", "*.wild.example.com"};
  c.service_entries.push_back(se);
  return c;
}

}  // namespace

TEST_CASE("netns: every service and entry host gets a distinct, stable virtual IP") {
  auto vips = service_vips(mesh_config());
  REQUIRE(vips.size() == 5);  // 4 services, 1 entry host (the wildcard gets none)
  std::set<std::string> ips;
  for (const auto& v : vips) {
    CHECK(v.vip.rfind("240.240.", 0) == 0);
    ips.insert(v.vip);
  }
  CHECK(ips.size() == vips.size());
  CHECK(service_vips(mesh_config()) == vips);  // the same config, the same addresses
  // Adding a service moves no other one (a hash of the host, not an index).
  config::Config more = mesh_config();
  config::Service extra;
  extra.name = "productpage";
  more.services.push_back(extra);
  auto vips2 = service_vips(more);
  for (const auto& v : vips) {
    bool kept = false;
    for (const auto& w : vips2)
      kept |= w.names == v.names && w.vip == v.vip;
    CHECK_MESSAGE(kept, v.names.back());
  }
}

TEST_CASE("netns: the hosts file gives short names in the client's namespace only") {
  auto vips = service_vips(mesh_config());
  std::string hosts = hosts_file(vips, "default");
  CHECK(hosts.find("127.0.0.1\tlocalhost\n") != std::string::npos);
  std::string reviews_vip, shop_vip;
  for (const auto& v : vips) {
    if (v.name == "reviews" && v.ns == "default") reviews_vip = v.vip;
    if (v.name == "reviews" && v.ns == "shop") shop_vip = v.vip;
  }
  CHECK(hosts.find(reviews_vip +
                   "\treviews\treviews.default\treviews.default.svc\treviews.default.svc."
                   "cluster.local\n") != std::string::npos);
  CHECK(hosts.find(shop_vip + "\treviews.shop\t") != std::string::npos);
  CHECK(hosts.find("\tapi.example.com") != std::string::npos);
  CHECK(hosts.find("wild") == std::string::npos);
  std::string shop = hosts_file(vips, "shop");
  CHECK(shop.find(shop_vip + "\treviews\treviews.shop\t") != std::string::npos);
  CHECK(shop.find(reviews_vip + "\treviews.default\t") != std::string::npos);
}

}  // namespace meshbox::control
