#include "examples/bookinfo/common/upstream.h"

#include <charconv>

namespace meshbox::bookinfo {

std::string Upstream::authority() const {
  std::string out;
  if (host.find(':') != std::string::npos)
    out = "[" + host + "]";
  else
    out = host;
  out += ":" + std::to_string(port);
  return out;
}

bool is_valid_host(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == ':';
    if (!ok) return false;
  }
  return true;
}

Result<uint16_t> parse_port(std::string_view text) {
  unsigned port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port == 0 ||
      port > 65535)
    return make_error(Code::InvalidArgument,
                      "bad port '" + std::string(text) + "': expected a number from 1 to 65535");
  return static_cast<uint16_t>(port);
}

Result<Upstream> parse_upstream(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return make_error(Code::InvalidArgument,
                        "bad address '" + std::string(text) + "': expected [IPv6]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      return make_error(Code::InvalidArgument,
                        "bad address '" + std::string(text) + "': expected HOST:PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (!is_valid_host(host))
    return make_error(Code::InvalidArgument, "bad address '" + std::string(text) + "': bad host '" +
                                                 std::string(host) + "'");
  auto p = parse_port(port);
  if (!p)
    return make_error(Code::InvalidArgument,
                      "bad address '" + std::string(text) + "': " + p.error().message());
  return Upstream{std::string(host), *p};
}

}  // namespace meshbox::bookinfo
