// SPIFFE IDs (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md): the
// identity a workload certificate carries as its one URI SAN, "spiffe://TRUST_DOMAIN/PATH".
// Parsing follows the spec strictly, and says why an ID is refused. Plain values.
#pragma once

#include <string>
#include <string_view>

#include "core/base/result.h"

namespace meshbox::tls {

struct SpiffeId {
  std::string trust_domain;  // "cluster.local"
  std::string path;          // "/ns/default/sa/reviews"; "" for the trust domain's own ID

  std::string str() const { return "spiffe://" + trust_domain + path; }
};

/// "spiffe://" (lowercase), a trust domain of lowercase letters, digits, '.', '-' and '_'
/// (no userinfo, no port), then an optional path of '/'-separated segments of letters,
/// digits, '.', '-' and '_' (no empty, "." or ".." segment, no trailing '/'); no query, no
/// fragment, no percent-encoding; at most 2048 bytes. The error message says what is wrong.
Result<SpiffeId> parse_spiffe_id(std::string_view text);

/// Why `name` is not a SPIFFE trust domain ("" is refused too); ok if it is one.
Status check_trust_domain(std::string_view name);

}  // namespace meshbox::tls
