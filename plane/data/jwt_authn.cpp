#include "plane/data/jwt_authn.h"

#include "core/http/header_map.h"

namespace meshbox::data {

namespace {

using tls::JwtStatus;

/// A request carrying more tokens than this is refused before any is verified: each costs a
/// signature check.
constexpr size_t kMaxTokens = 8;
/// Envoy's MaximumUriLength: the realm's path is cut there.
constexpr size_t kMaxRealmPath = 256;

/// A place tokens are looked for, and the providers (issuers) that look there.
struct Location {
  enum class Kind { Header, Param, Cookie };
  Kind kind;
  std::string_view name;    // header names lower case
  std::string_view prefix;  // Header: "Bearer ", or "" for the whole value
  std::vector<const JwtProviderSpec*> providers;
};

struct Found {
  const Location* location;
  std::string token;
};

void add_location(std::vector<Location>& out, Location::Kind kind, std::string_view name,
                  std::string_view prefix, const JwtProviderSpec* p) {
  for (auto& l : out) {
    if (l.kind == kind && l.name == name && l.prefix == prefix) {
      l.providers.push_back(p);
      return;
    }
  }
  out.push_back({kind, name, prefix, {p}});
}

bool is_base64url_or_dot(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string_view query_of(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  return query.substr(0, query.find('#'));
}

/// The first value of query parameter `name` (percent-decoded), as Envoy's extractor reads it.
bool query_param(std::string_view query, std::string_view name, std::string& value) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (percent_decode(pair.substr(0, eq)) != name) continue;
    value = eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    return true;
  }
  return false;
}

/// Drops every `name=…` parameter from the target's query (Envoy's JwtParamLocation::removeJwt).
void remove_query_param(std::string& target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string::npos) return;
  std::string_view query = std::string_view(target).substr(q + 1);
  std::string kept;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty() || percent_decode(pair.substr(0, pair.find('='))) == name) continue;
    if (!kept.empty()) kept += '&';
    kept.append(pair);
  }
  target.resize(kept.empty() ? q : q + 1);
  target += kept;
}

/// Cookie `name` from the Cookie headers (quotes around a value dropped).
bool cookie(const http::HeaderMap& headers, std::string_view name, std::string& value) {
  for (const auto& h : headers) {
    if (!http::iequals(h.name, "cookie")) continue;
    std::string_view rest = h.value;
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view item = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
        item.remove_prefix(1);
      size_t eq = item.find('=');
      if (eq == std::string_view::npos || item.substr(0, eq) != name) continue;
      std::string_view v = item.substr(eq + 1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
        v.remove_suffix(1);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      value = std::string(v);
      return true;
    }
  }
  return false;
}

/// Every token at `l` (a header may appear more than once).
void extract(const Location& l, const http::RequestHead& head, std::vector<Found>& out) {
  switch (l.kind) {
    case Location::Kind::Header:
      for (const auto& h : head.headers) {
        if (!http::iequals(h.name, l.name)) continue;
        std::string_view v = h.value;
        if (!l.prefix.empty()) {
          // As Envoy: the prefix anywhere in the value, then the token from the first
          // base64url character after it.
          size_t at = v.find(l.prefix);
          if (at == std::string_view::npos) continue;
          std::string_view after = v.substr(at + l.prefix.size());
          size_t start = 0;
          while (start < after.size() && !is_base64url_or_dot(after[start]))
            ++start;
          if (start < after.size())
            v = after.substr(start);
          else
            v = after;
        }
        out.push_back({&l, std::string(v)});
      }
      return;
    case Location::Kind::Param: {
      std::string value;
      if (query_param(query_of(head.target), l.name, value)) out.push_back({&l, std::move(value)});
      return;
    }
    case Location::Kind::Cookie: {
      std::string value;
      if (cookie(head.headers, l.name, value)) out.push_back({&l, std::move(value)});
      return;
    }
  }
}

}  // namespace

tls::JwtStatus authenticate_request(const RequestAuthnSpec& spec, http::RequestHead& head,
                                    int64_t now, RequestAuth& auth) {
  auth = RequestAuth{};
  if (spec.empty()) return JwtStatus::Ok;
  // A client never sets a payload header itself (Envoy's sanitizeHeaders).
  for (const auto& p : spec.providers)
    if (!p.output_payload_to_header.empty()) head.headers.remove(p.output_payload_to_header);

  std::vector<Location> locations;
  for (const auto& p : spec.providers) {
    for (const auto& h : p.from_headers)
      add_location(locations, Location::Kind::Header, h.name, h.prefix, &p);
    for (const auto& name : p.from_params)
      add_location(locations, Location::Kind::Param, name, "", &p);
    for (const auto& name : p.from_cookies)
      add_location(locations, Location::Kind::Cookie, name, "", &p);
    if (p.from_headers.empty() && p.from_params.empty() && p.from_cookies.empty()) {
      add_location(locations, Location::Kind::Header, "authorization", "Bearer ", &p);
      add_location(locations, Location::Kind::Param, "access_token", "", &p);
    }
  }
  std::vector<Found> found;
  for (const auto& l : locations)
    extract(l, head, found);
  if (found.empty()) return JwtStatus::Ok;
  if (found.size() > kMaxTokens) return JwtStatus::MultipleTokens;

  struct Verified {
    const Found* found;
    const JwtProviderSpec* provider;
    tls::Jwt jwt;
  };
  std::vector<Verified> verified;
  verified.reserve(found.size());
  for (const Found& f : found) {
    tls::Jwt jwt;
    JwtStatus s = tls::Jwt::parse(f.token, jwt);
    if (s != JwtStatus::Ok) return s;
    const JwtProviderSpec* provider = nullptr;
    for (const JwtProviderSpec* p : f.location->providers) {
      if (p->issuer == jwt.iss) {
        provider = p;
        break;
      }
    }
    if (provider == nullptr) return JwtStatus::UnknownIssuer;
    s = jwt.check_time(now);
    if (s != JwtStatus::Ok) return s;
    if (!jwt.audience_allowed(provider->audiences)) return JwtStatus::AudienceNotAllowed;
    if (!provider->jwks) return JwtStatus::JwksFetchFailed;
    s = provider->jwks->verify(jwt);
    if (s != JwtStatus::Ok) return s;
    verified.push_back({&f, provider, std::move(jwt)});
  }

  // Every token is good. What Envoy does with each, then the caller's view of the first.
  for (auto& v : verified) {
    const JwtProviderSpec& p = *v.provider;
    if (!p.output_payload_to_header.empty())
      head.headers.add(p.output_payload_to_header, v.jwt.payload_base64url);
    if (!p.forward_original_token) {
      const Location& l = *v.found->location;
      if (l.kind == Location::Kind::Header)
        head.headers.remove(l.name);
      else if (l.kind == Location::Kind::Param)
        remove_query_param(head.target, l.name);
    }
  }
  tls::Jwt& first = verified.front().jwt;
  auth.present = true;
  auth.principal = first.iss + "/" + first.sub;
  auth.audiences = std::move(first.audiences);
  auth.presenter = std::move(first.azp);
  auth.claims = std::move(first.payload);
  return JwtStatus::Ok;
}

std::string www_authenticate(const http::RequestHead& head, tls::JwtStatus status,
                             std::string_view scheme) {
  const std::string* host = head.headers.get("host");
  std::string value = "Bearer realm=\"";
  value.append(scheme).append("://");
  if (host) value += *host;
  value.append(std::string_view(head.target).substr(0, kMaxRealmPath));
  value += '"';
  if (status != JwtStatus::Missing) value += ", error=\"invalid_token\"";
  return value;
}

}  // namespace meshbox::data
