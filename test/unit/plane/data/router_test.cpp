// Router: virtual-host choice by the Host header, and route input from a request target.
#include "plane/data/router.h"

#include <doctest/doctest.h>

#include <random>

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

namespace meshbox::data {

TEST_CASE("router: header conditions over many routes: each block sees the request's headers") {
  // Names repeat across blocks (the route input keeps the last few lookups), more names than
  // it keeps, absent headers, case-insensitive names, and a header sent twice (first value).
  http::RequestHead head;
  head.method = "GET";
  head.target = "/api/v1/items/42?x=1";
  head.headers.add("Host", "example.com");
  head.headers.add("X-Tenant", "tenant-7");
  head.headers.add("x-a", "a");
  head.headers.add("x-b", "b");
  head.headers.add("x-c", "c");
  head.headers.add("x-d", "d");
  head.headers.add("x-a", "second");
  VirtualHostSpec vh;
  auto route = [&](std::string name, std::string value, bool invert = false) {
    RouteSpec r;
    r.name = name + "=" + value + (invert ? " (without)" : "");
    RouteMatchSpec m;
    m.path = *StringMatcher::make(StringMatcher::Kind::Prefix, "/api/");
    m.headers.push_back(
        {std::move(name), *StringMatcher::make(StringMatcher::Kind::Exact, value), invert});
    r.matches.push_back(std::move(m));
    vh.routes.push_back(std::move(r));
  };
  for (int i = 0; i < 7; ++i)
    route("x-tenant", "tenant-" + std::to_string(i));
  route("x-a", "second");
  route("x-missing", "");
  route("x-b", "nope");
  route("x-c", "nope");
  route("x-d", "nope");
  route("x-missing", "", true);  // without_headers: holds (the header is absent)
  route("x-tenant", "tenant-7");
  RouteInput in = RouteInput::from(head, 80);
  RouteHit hit = find_route(vh, in);
  REQUIRE(hit.route);
  CHECK(hit.route->name == "x-missing= (without)");
  // Asked again, in another order, the answers stay the same.
  const std::string a = "x-a", b = "x-b", c = "x-c", d = "x-d", tenant = "x-tenant",
                    missing = "x-missing";
  CHECK(in.header(d) != nullptr);
  CHECK(*in.header(a) == "a");
  CHECK(*in.header(tenant) == "tenant-7");
  CHECK(in.header(missing) == nullptr);
  CHECK(*in.header(c) == "c");
  CHECK(*in.header(b) == "b");
  CHECK(*in.header(a) == "a");

  vh.routes.erase(vh.routes.end() - 2);
  RouteInput again = RouteInput::from(head, 80);
  hit = find_route(vh, again);
  REQUIRE(hit.route);
  CHECK(hit.route->name == "x-tenant=tenant-7");
}

}  // namespace meshbox::data

namespace meshbox::data {

TEST_CASE("router: the prefilter never changes which route matches (random tables)") {
  // Random tables of exact, prefix, regex and case-insensitive paths, header conditions
  // (exact, prefix, present, without), methods, and routes without blocks; random requests
  // drawn from the same pieces. find_route with the prefilter must pick what the full scan
  // picks, block included.
  std::mt19937 rng(20261126);
  auto pick = [&](std::initializer_list<const char*> xs) {
    return std::string(*(xs.begin() + rng() % xs.size()));
  };
  auto path_piece = [&] {
    return pick({"/", "/a", "/api", "/api/", "/api/v1/items", "/api/v1/items/42", "/b/x",
                 "/api/v1/items/4", "/API/v1", "/api/v10", "/x/y/z/long/path/here"});
  };
  auto value_piece = [&] { return pick({"", "t", "tenant-0", "tenant-1", "Tenant-0", "x"}); };
  auto name_piece = [&] { return pick({"x-tenant", "x-user", "x-a", "end-user"}); };
  int agreed = 0;
  for (int round = 0; round < 300; ++round) {
    VirtualHostSpec vh;
    int routes = 1 + static_cast<int>(rng() % 40);
    for (int r = 0; r < routes; ++r) {
      RouteSpec route;
      route.name = "r" + std::to_string(r);
      int blocks = static_cast<int>(rng() % 3);  // 0: matches everything
      for (int b = 0; b < blocks; ++b) {
        RouteMatchSpec m;
        switch (rng() % 6) {
          case 0:
            m.path = *StringMatcher::make(StringMatcher::Kind::Exact, path_piece());
            break;
          case 1:
            m.path = *StringMatcher::make(StringMatcher::Kind::Prefix, path_piece());
            break;
          case 2:
            m.path = *StringMatcher::make(StringMatcher::Kind::Prefix, path_piece(), true);
            break;
          case 3:
            m.path = *StringMatcher::make(StringMatcher::Kind::Regex, "/api/v1/.*");
            break;
          default:
            break;
        }
        int headers = static_cast<int>(rng() % 3);
        for (int h = 0; h < headers; ++h) {
          auto kind = rng() % 4 == 0   ? StringMatcher::Kind::Prefix
                      : rng() % 4 == 0 ? StringMatcher::Kind::Present
                                       : StringMatcher::Kind::Exact;
          m.headers.push_back(
              {name_piece(), *StringMatcher::make(kind, value_piece()), rng() % 5 == 0});
        }
        if (rng() % 5 == 0) m.method = *StringMatcher::make(StringMatcher::Kind::Exact, "POST");
        route.matches.push_back(std::move(m));
      }
      vh.routes.push_back(std::move(route));
    }
    VirtualHostSpec indexed = vh;
    indexed.build_prefilter();
    for (int q = 0; q < 30; ++q) {
      http::RequestHead head;
      head.method = rng() % 4 == 0 ? "POST" : "GET";
      head.target = path_piece() + (rng() % 3 == 0 ? "?q=1" : "");
      head.headers.add("host", "h");
      int hs = static_cast<int>(rng() % 3);
      for (int h = 0; h < hs; ++h)
        head.headers.add(name_piece(), value_piece());
      RouteHit full = find_route(vh, RouteInput::from(head, 80));
      RouteHit fast = find_route(indexed, RouteInput::from(head, 80));
      auto id = [](const VirtualHostSpec& v, const RouteHit& h) {
        if (!h.route) return std::string("none");
        size_t r = static_cast<size_t>(h.route - v.routes.data());
        size_t b = h.match ? static_cast<size_t>(h.match - h.route->matches.data()) : 99;
        return std::to_string(r) + "/" + std::to_string(b);
      };
      INFO("round " << round << ", request " << head.method << " " << head.target);
      REQUIRE(id(vh, full) == id(indexed, fast));
      ++agreed;
    }
  }
  CHECK(agreed == 300 * 30);
}

}  // namespace meshbox::data
