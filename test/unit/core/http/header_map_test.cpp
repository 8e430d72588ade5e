// Tests for core/http/header_map.h: an ordered, case-insensitive header block.
#include "core/http/header_map.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace meshbox::http {
namespace {

std::vector<std::string> dump(const HeaderMap& h) {
  std::vector<std::string> out;
  for (const auto& e : h)
    out.push_back(e.name + ": " + e.value);
  return out;
}

TEST_CASE("header_map: iequals") {
  CHECK(iequals("Content-Length", "content-length"));
  CHECK(iequals("", ""));
  CHECK(iequals("ABC", "abc"));
  CHECK_FALSE(iequals("abc", "abd"));
  CHECK_FALSE(iequals("abc", "abcd"));
  // Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by 32 but are not a case pair.
  CHECK_FALSE(iequals("@", "`"));
  CHECK_FALSE(iequals("[", "{"));
}

TEST_CASE("header_map: has_token") {
  CHECK(has_token("close", "close"));
  CHECK(has_token("keep-alive, Upgrade", "upgrade"));
  CHECK(has_token(" gzip ,\tchunked\t", "chunked"));
  CHECK(has_token("a,,b", "b"));
  CHECK_FALSE(has_token("", "close"));
  CHECK_FALSE(has_token("closed", "close"));
  CHECK_FALSE(has_token("x-close", "close"));
  CHECK_FALSE(has_token("chunked;q=1", "chunked"));
}

TEST_CASE("header_map: add keeps order, case and duplicates") {
  HeaderMap h;
  CHECK(h.empty());
  h.add("Host", "example.com");
  h.add("Set-Cookie", "a=1");
  h.add("set-cookie", "b=2");
  h.add("X-Empty", "");
  CHECK(h.size() == 4);
  CHECK_FALSE(h.empty());
  CHECK(dump(h) == std::vector<std::string>{"Host: example.com", "Set-Cookie: a=1",
                                            "set-cookie: b=2", "X-Empty: "});
  CHECK(h.count("SET-COOKIE") == 2);
  CHECK(h.count("missing") == 0);
  REQUIRE(h.get("set-cookie") != nullptr);
  CHECK(*h.get("set-cookie") == "a=1");  // the first
  CHECK(h.has("HOST"));
  CHECK(h.has("x-empty"));
  CHECK_FALSE(h.has("Hos"));
  CHECK(h.get("nope") == nullptr);
}

TEST_CASE("header_map: set replaces every entry with one, at the first one's place") {
  HeaderMap h;
  h.add("A", "1");
  h.add("Via", "x");
  h.add("B", "2");
  h.add("VIA", "y");
  h.set("via", "z");
  CHECK(dump(h) == std::vector<std::string>{"A: 1", "Via: z", "B: 2"});
  // Absent: appended with the given spelling.
  h.set("X-New", "v");
  CHECK(dump(h) == std::vector<std::string>{"A: 1", "Via: z", "B: 2", "X-New: v"});
}

TEST_CASE("header_map: remove and remove_if") {
  HeaderMap h;
  h.add("Connection", "close");
  h.add("Keep-Alive", "timeout=5");
  h.add("connection", "upgrade");
  h.add("X-Keep", "1");
  CHECK(h.remove("CONNECTION") == 2);
  CHECK(h.remove("absent") == 0);
  CHECK(dump(h) == std::vector<std::string>{"Keep-Alive: timeout=5", "X-Keep: 1"});
  h.remove_if([](const HeaderEntry& e) { return iequals(e.name, "keep-alive"); });
  CHECK(dump(h) == std::vector<std::string>{"X-Keep: 1"});
  h.clear();
  CHECK(h.empty());
  CHECK(h.size() == 0);
}

TEST_CASE("header_map: append_entry() lets the parser fill the last entry") {
  HeaderMap h;
  h.append_entry();
  h.back().name.append("Con");
  h.back().name.append("tent-Type");
  h.back().value.append("text/plain");
  CHECK(*h.get("content-type") == "text/plain");
}

TEST_CASE("header_map: cleared and removed entries are reused empty") {
  HeaderMap h;
  h.add("X-Long-Header-Name-Here", "a value long enough to live on the heap");
  h.add("Y", "2");
  h.clear();
  CHECK(h.empty());
  HeaderEntry& e = h.append_entry();
  CHECK(e.name.empty());
  CHECK(e.value.empty());
  CHECK(e.name.capacity() >= 23);  // the old storage, kept
  e.name = "Z";
  e.value = "3";
  CHECK(h.size() == 1);
  CHECK(*h.get("z") == "3");
  CHECK_FALSE(h.has("y"));
  h.add("A", "1");
  h.add("Z", "4");
  h.add("B", "2");
  CHECK(h.remove("z") == 2);
  CHECK(h.size() == 2);
  CHECK(h.begin()->name == "A");
  CHECK((h.begin() + 1)->name == "B");
  h.set("a", "9");
  CHECK(h.size() == 2);
  CHECK(*h.get("A") == "9");
  HeaderMap moved = std::move(h);
  CHECK(moved.size() == 2);
  CHECK(h.size() == 0);  // NOLINT: moved-from is empty and usable
  h.add("C", "1");
  CHECK(h.size() == 1);
}

TEST_CASE("header_map: copies are independent") {
  HeaderMap a;
  a.add("A", "1");
  HeaderMap b = a;
  b.set("A", "2");
  CHECK(*a.get("A") == "1");
  CHECK(*b.get("A") == "2");
}

}  // namespace
}  // namespace meshbox::http
