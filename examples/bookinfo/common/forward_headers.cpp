#include "examples/bookinfo/common/forward_headers.h"

#include <array>

namespace meshbox::bookinfo {

namespace {

constexpr std::array<std::string_view, 21> kForwarded = {
    // Envoy's request id: consistent trace and log sampling across the hops.
    "x-request-id",
    // Zipkin B3, multi-header and single-header.
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    // W3C trace context.
    "traceparent",
    "tracestate",
    // Other tracers Istio lists.
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    // Who the user is: routing rules match on end-user (Istio's request-routing task).
    "end-user",
    // Copied by Bookinfo's services too.
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
};

}  // namespace

std::span<const std::string_view> forwarded_header_names() {
  return kForwarded;
}

void copy_forwarded_headers(const http::HeaderMap& from, http::HeaderMap& to, bool with_end_user) {
  for (const auto& h : from) {
    for (std::string_view name : kForwarded) {
      if (!http::iequals(h.name, name)) continue;
      if (!with_end_user && name == "end-user") break;
      to.add(name, h.value);
      break;
    }
  }
}

}  // namespace meshbox::bookinfo
