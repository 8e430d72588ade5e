#include "examples/httpbin/route.h"

#include <charconv>

namespace meshbox::httpbin {

namespace {

// Strips "scheme://authority" from an absolute-form target, leaving the path and query.
std::string_view origin_form(std::string_view target) {
  size_t scheme_end = target.find("://");
  if (target.empty() || target.front() == '/' || scheme_end == std::string_view::npos)
    return target;
  size_t path = target.find_first_of("/?", scheme_end + 3);
  if (path == std::string_view::npos) return "/";
  if (target[path] == '?') return "/";  // "http://host?q": no path, the query is irrelevant
  return target.substr(path);
}

bool parse_number(std::string_view text, uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool query_flag(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    size_t eq = item.find('=');
    if (item.substr(0, eq) == name) {
      std::string_view value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
      return value == "1" || value == "true";
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

Route bad(std::string_view why) {
  Route r;
  r.endpoint = Endpoint::BadRequest;
  r.error = why;
  return r;
}

}  // namespace

Route match_route(std::string_view method, std::string_view target) {
  target = origin_form(target);
  size_t question = target.find('?');
  std::string_view path = target.substr(0, question);
  std::string_view query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  bool get = method == "GET" || method == "HEAD";
  bool post = method == "POST" || method == "PUT";

  Route r;
  if (path == "/headers") {
    r.endpoint = Endpoint::Headers;
    return r;
  }
  if (post) {
    if (path == "/echo") r.endpoint = Endpoint::Echo;
    if (path == "/upload") r.endpoint = Endpoint::Upload;
    return r;
  }
  if (!get) return r;

  constexpr std::string_view kBytes = "/bytes/", kStatus = "/status/", kDelay = "/delay/";
  if (path == "/") {
    r.endpoint = Endpoint::Hello;
  } else if (path == "/stats") {
    r.endpoint = Endpoint::Stats;
  } else if (path == "/abort-mid-body") {
    r.endpoint = Endpoint::AbortMidBody;
  } else if (path == "/close-before-response") {
    r.endpoint = Endpoint::CloseBeforeResponse;
  } else if (path == "/ws") {
    if (method == "GET") r.endpoint = Endpoint::WebSocket;
  } else if (path.starts_with(kBytes)) {
    if (!parse_number(path.substr(kBytes.size()), r.number))
      return bad("/bytes/N: N must be a decimal byte count");
    r.endpoint = Endpoint::Bytes;
    r.chunked = query_flag(query, "chunked");
  } else if (path.starts_with(kStatus)) {
    if (!parse_number(path.substr(kStatus.size()), r.number) || r.number < 200 || r.number > 599)
      return bad("/status/CODE: CODE must be a number from 200 to 599");
    r.endpoint = Endpoint::Status;
  } else if (path.starts_with(kDelay)) {
    if (!parse_number(path.substr(kDelay.size()), r.number) || r.number > kMaxDelayMs)
      return bad("/delay/MS: MS must be a number of milliseconds up to 600000");
    r.endpoint = Endpoint::Delay;
  }
  return r;
}

}  // namespace meshbox::httpbin
