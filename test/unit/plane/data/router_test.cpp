// Router: virtual-host choice by the Host header, and route input from a request target.
#include "plane/data/router.h"

#include <doctest/doctest.h>

namespace meshbox::data {
namespace {

RouteTableSpec table(std::vector<std::pair<std::string, std::vector<std::string>>> hosts) {
  RouteTableSpec t;
  t.name = "t";
  for (auto& [name, domains] : hosts) {
    VirtualHostSpec vh;
    vh.name = name;
    vh.domains = std::move(domains);
    t.virtual_hosts.push_back(std::move(vh));
  }
  return t;
}

std::string pick(const RouteTableSpec& t, std::string_view host) {
  const VirtualHostSpec* vh = find_virtual_host(t, host);
  return vh ? vh->name : "(none)";
}

}  // namespace

TEST_CASE("router: the most specific virtual host wins; a domain with a port beats one without") {
  RouteTableSpec t = table({
      {"any", {"*"}},
      {"suffix", {"*.example.com"}},
      {"longer-suffix", {"*.api.example.com"}},
      {"prefix", {"reviews.*"}},
      {"exact", {"www.example.com"}},
      {"reviews-80", {"reviews", "reviews.default"}},
      {"reviews-9080", {"reviews:9080", "reviews.default:9080"}},
  });
  CHECK(pick(t, "www.example.com") == "exact");
  CHECK(pick(t, "WWW.Example.COM:8080") == "exact");  // port stripped, case ignored
  CHECK(pick(t, "x.api.example.com") == "longer-suffix");
  CHECK(pick(t, "x.example.com") == "suffix");
  CHECK(pick(t, "reviews.other") == "prefix");
  CHECK(pick(t, "reviews") == "reviews-80");
  CHECK(pick(t, "reviews:9080") == "reviews-9080");
  CHECK(pick(t, "Reviews.Default:9080") == "reviews-9080");
  CHECK(pick(t, "reviews:80") == "reviews-80");  // no "reviews:80" domain: the port-less one
  CHECK(pick(t, "elsewhere") == "any");
  CHECK(pick(table({{"only", {"a.com"}}}), "b.com") == "(none)");

  // A sidecar's table: the Host's port decides.
  RouteTableSpec strict = table({
      {"any", {"*"}},
      {"ext-80", {"ext.example:80", "ext.example"}},
      {"reviews-9080", {"reviews:9080"}},
  });
  strict.strict_port = true;
  CHECK(pick(strict, "ext.example") == "ext-80");
  CHECK(pick(strict, "EXT.example:80") == "ext-80");
  CHECK(pick(strict, "ext.example:8081") == "any");
  CHECK(pick(strict, "reviews:9080") == "reviews-9080");
  CHECK(pick(strict, "reviews") == "any");
}

TEST_CASE("router: route input splits an absolute-form target") {
  http::RequestHead head;
  head.method = "GET";
  head.target = "http://reviews:9080/reviews/0?x=1";
  RouteInput in = RouteInput::from(head, 15001);
  CHECK(in.host == "reviews:9080");  // no Host header: the target's authority
  CHECK(in.path == "/reviews/0");
  CHECK(in.query == "x=1");
}

}  // namespace meshbox::data
