// The request headers a Bookinfo service copies from the request it serves onto the calls it
// makes because of it, so the mesh's proxies can join the hops into one trace and route on
// the user. The list is Istio's (istio.io "distributed tracing" and Bookinfo's own services):
// x-request-id, B3 (multi- and single-header), W3C trace context, the other tracers' headers,
// end-user, and user-agent, cookie, authorization and jwt. Pure functions.
#pragma once

#include <span>
#include <string_view>

#include "core/http/header_map.h"

namespace meshbox::bookinfo {

/// Every header name forwarded, lower case.
std::span<const std::string_view> forwarded_header_names();

/// Copies each forwarded header present in `from` to `to` (every occurrence, in order).
/// `with_end_user` false leaves end-user out: productpage sets it from its own session
/// cookie, never from what the client sent (Istio's productpage does the same).
void copy_forwarded_headers(const http::HeaderMap& from, http::HeaderMap& to,
                            bool with_end_user = true);

}  // namespace meshbox::bookinfo
