#include "core/tls/spiffe.h"

#include <fmt/format.h>

namespace meshbox::tls {

namespace {

constexpr std::string_view kScheme = "spiffe://";
constexpr size_t kMaxIdBytes = 2048;
constexpr size_t kMaxTrustDomainBytes = 255;

bool trust_domain_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

bool path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// A character as a message shows it: 'x', or its code for a control or non-ASCII byte.
std::string show(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u < 0x20 || u >= 0x7f) return fmt::format("byte 0x{:02x}", u);
  return fmt::format("'{}'", c);
}

Status bad(std::string why) {
  return make_error(Code::InvalidArgument, std::move(why));
}

Status check_path(std::string_view path) {
  if (path.empty()) return Status::ok();
  // path[0] == '/'
  size_t start = 1;
  while (true) {
    size_t end = path.find('/', start);
    std::string_view seg = path.substr(start, end == std::string_view::npos ? end : end - start);
    if (seg.empty()) {
      return bad(end == std::string_view::npos ? "the path ends with '/'; drop the trailing slash"
                                               : "the path has an empty segment (\"//\")");
    }
    if (seg == "." || seg == "..") return bad("the path has a \".\" or \"..\" segment");
    for (char c : seg) {
      if (c == '%') return bad("the path is percent-encoded; SPIFFE IDs allow no escapes");
      if (!path_char(c))
        return bad(
            fmt::format("the path has {}: path segments hold only letters, digits, "
                        "'.', '-' and '_'",
                        show(c)));
    }
    if (end == std::string_view::npos) return Status::ok();
    start = end + 1;
  }
}

}  // namespace

Status check_trust_domain(std::string_view name) {
  if (name.empty()) return bad("the trust domain is empty");
  if (name.size() > kMaxTrustDomainBytes)
    return bad(fmt::format("the trust domain has {} bytes; at most {}", name.size(),
                           kMaxTrustDomainBytes));
  for (char c : name) {
    if (c == ':') return bad("the trust domain has a port (':'); SPIFFE IDs have none");
    if (c == '@') return bad("the trust domain has userinfo ('@'); SPIFFE IDs have none");
    if (c >= 'A' && c <= 'Z')
      return bad(fmt::format("the trust domain has an uppercase letter ({}); write it lowercase",
                             show(c)));
    if (!trust_domain_char(c))
      return bad(
          fmt::format("the trust domain has {}: it holds only lowercase letters, digits, "
                      "'.', '-' and '_'",
                      show(c)));
  }
  return Status::ok();
}

Result<SpiffeId> parse_spiffe_id(std::string_view text) {
  if (text.size() > kMaxIdBytes)
    return bad(fmt::format("{} bytes long; a SPIFFE ID has at most {}", text.size(), kMaxIdBytes));
  if (!text.starts_with(kScheme)) {
    std::string head(text.substr(0, kScheme.size()));
    for (char& c : head)
      c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (head == kScheme) return bad("the scheme must be \"spiffe\" in lowercase");
    return bad("it does not start with \"spiffe://\" (expected spiffe://TRUST_DOMAIN/PATH)");
  }
  std::string_view rest = text.substr(kScheme.size());
  if (size_t q = rest.find_first_of("?#"); q != std::string_view::npos)
    return bad(rest[q] == '?' ? "it has a query ('?'); SPIFFE IDs have none"
                              : "it has a fragment ('#'); SPIFFE IDs have none");
  size_t slash = rest.find('/');
  std::string_view td = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (td.empty()) return bad("the trust domain is missing (spiffe://TRUST_DOMAIN/PATH)");
  MB_TRY(check_trust_domain(td));
  MB_TRY(check_path(path));
  return SpiffeId{std::string(td), std::string(path)};
}

}  // namespace meshbox::tls
