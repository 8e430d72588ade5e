// Trace context propagation: reads the context a request arrived with (W3C traceparent and
// tracestate, B3 multi-header, B3 single header `b3`), makes the context of this hop's span
// (a child of the caller's, or a new trace), and rewrites the request's headers so the next hop
// sees that span as its parent, in the same formats the request came with (W3C and B3 multi when
// it came with none, as Envoy's Zipkin tracer with W3C on does). Sampling follows the caller's
// decision; an undecided request is sampled at a percentage, drawn from the caller's Random.
//
// Header names compare case-insensitively; values follow each spec: a malformed header is
// ignored as if absent (a new trace starts), never an error. Pure functions on value types, no
// state: any thread, the request path included (no locks, no I/O).
//
// Use on the request path (one hop):
//
//   trace::SpanContext span = trace::propagate(request.headers, rng, sample_percent);
//   ... forward the request; when the hop ends, if span.sampled, report a trace::Span
//   (core/trace/span.h) with span.trace_id, span.span_id and span.parent_id.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/random.h"
#include "core/http/header_map.h"

namespace meshbox::trace {

/// A trace id: 128 bits (W3C, B3 with 32 hex digits) or 64 (B3 with 16: high == 0).
struct TraceId {
  uint64_t high = 0;
  uint64_t low = 0;

  bool empty() const { return high == 0 && low == 0; }
  bool operator==(const TraceId&) const = default;
};

/// The propagation formats, as bits of a `formats` field.
inline constexpr uint8_t kFormatW3c = 1;       // traceparent (+ tracestate)
inline constexpr uint8_t kFormatB3Multi = 2;   // x-b3-traceid, x-b3-spanid, …
inline constexpr uint8_t kFormatB3Single = 4;  // b3

/// The caller's sampling decision.
enum class Sampled : uint8_t { Undecided, No, Yes };

/// Between two meshbox proxies (a gateway or an outbound sidecar to a workload's inbound
/// sidecar) the context travels in this one header instead of the four or five standard ones,
/// as `<formats: one hex digit>-<the b3 single value>` (plus `tracestate` when there is one):
/// the receiving proxy reads it as it would have read the standard headers and writes those
/// for its app, in the same formats. It costs a fifth of the bytes and of the parsing. A
/// request that carries it is read from it alone; a malformed one is ignored as if absent.
inline constexpr std::string_view kProxyHeader = "x-meshbox-trace";

/// W3C tracestate: at most this many characters are kept (the spec's minimum to propagate);
/// beyond it whole list members are dropped from the end.
inline constexpr size_t kMaxTracestate = 512;

/// The context a request arrived with: the caller's span, which is this hop's parent.
struct IncomingContext {
  /// Formats present with a valid value (a malformed header is not counted). Nonzero even
  /// without a trace id when a header carried only a sampling decision (`b3: 0`).
  uint8_t formats = 0;
  TraceId trace_id;             // empty: no context to continue
  uint64_t span_id = 0;         // the caller's span
  uint64_t parent_span_id = 0;  // the caller's parent (B3 only); 0 when none or unknown
  Sampled sampled = Sampled::Undecided;
  bool debug = false;      // B3 debug (x-b3-flags: 1, b3 `d`): sample, whatever the rate
  std::string tracestate;  // W3C tracestate, only when traceparent was valid

  /// A trace to continue (a trace id and a span id).
  bool has_context() const { return !trace_id.empty() && span_id != 0; }
};

/// The context of this hop's span, and what the next hop receives.
struct SpanContext {
  TraceId trace_id;
  uint64_t span_id = 0;
  uint64_t parent_id = 0;  // 0: the root span of a new trace
  bool sampled = false;
  bool debug = false;
  /// The span shares the caller's id (a Zipkin server span joined to its client span:
  /// Span::shared); see join().
  bool shared = false;
  /// Formats inject() writes: those the request came with, else W3C and B3 multi.
  uint8_t formats = kFormatW3c | kFormatB3Multi;
  std::string tracestate;  // passed through with traceparent
};

/// Reads every supported header of `headers` in one pass. A valid kProxyHeader is the whole
/// context. Otherwise, when several formats are present, the context comes from the first
/// valid one of b3, x-b3-*, traceparent (Envoy's order); all valid ones are recorded in
/// `formats` so inject() writes them all back.
IncomingContext extract(const http::HeaderMap& headers);

/// Whether to sample: the caller's decision when it made one (debug means yes), else yes with
/// probability `percent` / 100 (0–100, fractions allowed; ≤ 0 never, ≥ 100 always).
bool decide_sampling(Sampled incoming, bool debug, double percent, Random& rng);

/// A new span whose parent is the caller's span (or the root of a new trace with a fresh
/// 128-bit id when the request had no context). Its span id is a fresh nonzero 64-bit value.
SpanContext child_of(const IncomingContext& in, Random& rng, double sample_percent);

/// A span that shares the caller's span id (Zipkin's shared server span, Envoy's
/// shared_span_context): same trace, span and parent ids as the caller; a child_of() span when
/// the request had no context.
SpanContext join(const IncomingContext& in, Random& rng, double sample_percent);

/// Rewrites `headers` for the next hop: `span` is written as the parent in each of
/// `span.formats`, or, when the next hop is a meshbox proxy (`to_proxy`), in kProxyHeader
/// (and tracestate). A trace header (traceparent, tracestate, b3, x-b3-*, kProxyHeader) the
/// request already has takes its new value where it stands (the first of each name, its name
/// in lower case); every other trace header is removed; the rest are appended.
void inject(const SpanContext& span, http::HeaderMap& headers, bool to_proxy = false);

/// For a hop that does not trace: a kProxyHeader the request carries becomes the standard
/// headers again, with the caller's span as their parent, as if the previous proxy had
/// written them. Returns false (and changes nothing) when there is none.
bool restore_standard(http::HeaderMap& headers);

/// extract(), child_of(), inject(): the whole hop. Returns the new span's context.
SpanContext propagate(http::HeaderMap& headers, Random& rng, double sample_percent,
                      bool to_proxy = false);

// ----- parsing and formatting of single values (also used by the tests) -----

/// A parsed traceparent.
struct W3cParent {
  TraceId trace_id;
  uint64_t span_id = 0;
  uint8_t flags = 0;  // bit 0: sampled
};
/// Parses a traceparent value per W3C Trace Context level 1: version 00 is exactly
/// `00-<32 hex>-<16 hex>-<2 hex>`; a higher version may carry more after a `-`; version ff,
/// upper-case hex, all-zero ids and wrong lengths are invalid. Returns false when invalid.
bool parse_traceparent(std::string_view value, W3cParent& out);

/// A parsed B3 context (single or multi header).
struct B3Context {
  TraceId trace_id;  // empty: the header carried only a sampling decision
  uint64_t span_id = 0;
  uint64_t parent_span_id = 0;
  Sampled sampled = Sampled::Undecided;
  bool debug = false;
};
/// Parses a `b3` value: `{TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]` or a bare
/// sampling state `0`, `1`, `d`. Ids are 16 or 32 (trace id) and 16 hex digits, nonzero.
bool parse_b3_single(std::string_view value, B3Context& out);

/// Hex of `n` as 16 lower-case digits.
void format_span_id(uint64_t n, char out[16]);
std::string span_id_hex(uint64_t n);
/// Hex of a trace id: 32 digits, or 16 when `high` is 0 and `wide` is false.
std::string trace_id_hex(const TraceId& id, bool wide = false);
/// `00-<trace id>-<span id>-<01|00>`.
std::string format_traceparent(const SpanContext& span);
/// `<trace id>-<span id>-<1|0|d>[-<parent id>]`.
std::string format_b3_single(const SpanContext& span);

/// Parses 16 or 32 hex digits (either case) into `out`; false on anything else or zero.
bool parse_hex_id(std::string_view hex, TraceId& out);
/// Parses exactly 16 hex digits (either case); false on anything else or zero.
bool parse_hex_span(std::string_view hex, uint64_t& out);

}  // namespace meshbox::trace
