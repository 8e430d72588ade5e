// Access log formats: Envoy's format strings ("%REQ(:METHOD)% %RESPONSE_CODE%…", its command
// operators), parsed once into tokens, and the whole setting of an access log (where, and in
// what format) as the compiler puts it on each listener (snapshot.h) and the data plane's
// AccessLogger (plane/data/access_log.h) writes it. Parsing lives here so that validation
// reports a bad format at its file:line:column and the compiler and the data plane agree on
// what a format means. Value types; immutable once in a snapshot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshbox::config {

/// Envoy's command operators that meshbox supports, plus a few of its own (SOURCE_*,
/// DESTINATION_*, REPORTER) for Istio's identities. An operator whose value is unknown prints
/// "-" in text and null in JSON, as in Envoy.
enum class LogOp : uint8_t {
  Literal,                         // `text` as is
  StartTime,                       // START_TIME or START_TIME(strftime format; %f %3f %6f %9f %s)
  Req,                             // REQ(NAME?ALT): a request header (the ones a record carries)
  Resp,                            // RESP(NAME): response headers are not recorded: always "-"
  ResponseCode,                    // 0 when no response was sent
  ResponseFlags,                   // "UF,URX" or "-"
  ResponseCodeDetails,             // not recorded: "-"
  ConnectionTerminationDetails,    // not recorded: "-"
  UpstreamTransportFailureReason,  // not recorded: "-"
  BytesReceived,                   // request body bytes (tcp: bytes from the client)
  BytesSent,                       // response body bytes (tcp: bytes to the client)
  Duration,                        // ms, start → last byte
  ResponseDuration,                // ms, start → response head ("-": none)
  UpstreamHost,                    // "ip:port" of the endpoint
  UpstreamCluster,                 // the cluster's name
  UpstreamLocalAddress,            // not recorded: "-"
  DownstreamLocalAddress,          // the listener's address
  DownstreamRemoteAddress,         // "ip:port" of the client
  DownstreamRemoteAddressWithoutPort,
  DownstreamPeerUriSan,  // the client's SPIFFE ID (mesh mTLS on an inbound sidecar)
  UpstreamPeerUriSan,    // the endpoint's SPIFFE ID (mesh mTLS from a sidecar or gateway)
  RequestedServerName,   // not recorded: "-"
  RouteName,
  Protocol,  // "HTTP/1.1", "HTTP/1.0"; tcp: "-"
  // meshbox's own: Istio's identity labels of the call.
  SourceWorkload,
  SourceNamespace,
  SourcePrincipal,
  SourceApp,
  SourceVersion,
  DestinationWorkload,
  DestinationNamespace,
  DestinationPrincipal,
  DestinationApp,
  DestinationVersion,
  DestinationService,  // the cluster's service host ("reviews.default.svc.cluster.local")
  Reporter,            // "source", "destination" ("-": a plain proxy)
};

/// The request headers a record keeps, for REQ(): any other header is always unknown.
enum class LogHeader : uint8_t {
  None,
  Method,
  Path,
  Authority,
  UserAgent,
  RequestId,
  ForwardedFor
};
/// Which one a header name (lower case; ":method", ":path", ":authority", "host"…) is.
LogHeader log_header(std::string_view name);

/// One piece of a format: a literal or an operator with its arguments.
struct LogToken {
  LogOp op = LogOp::Literal;
  /// Literal: the text. Req/Resp: the header name, lower case (":method", ":path",
  /// ":authority" are the pseudo-headers). StartTime: the strftime format ("" = RFC 3339 with
  /// milliseconds, UTC: "2026-11-26T13:57:50.123Z").
  std::string text;
  std::string alt;  // Req: the header used when `text` is absent ("" = none)
  LogHeader header = LogHeader::None, alt_header = LogHeader::None;  // Req: text's, alt's
  size_t max_len = 0;  // %OP:N%: at most N bytes of the value; 0 = whole
  bool operator==(const LogToken&) const = default;
};

using LogTemplate = std::vector<LogToken>;

/// An error in a format string: where (a byte offset into it) and what.
struct LogFormatError {
  size_t offset = 0;
  std::string message;
};

/// Parses an Envoy format string. "%%" is a literal '%'. An unknown operator, an operator that
/// needs an argument without one (or has one it does not take), an unclosed '%' or a bad
/// ":N" length are errors.
std::optional<LogFormatError> parse_log_template(std::string_view format, LogTemplate& out);

/// How an access log's lines look.
enum class LogEncoding : uint8_t {
  Text,  // `line`: a format string (Istio's default text format unless written)
  Json,  // `fields`: one JSON object per line
};

/// One access log: where its lines go and how they look. Shared by every listener that
/// logs alike (shared_ptr); compared by content.
struct AccessLogSpec {
  /// "/dev/stdout", "/dev/stderr" or a file path (appended to; created if missing).
  std::string path;
  LogEncoding encoding = LogEncoding::Json;
  LogTemplate line;  // Text: ends with a newline
  /// Json: the members of each line's object, in order: name → template. A template that is
  /// one numeric operator alone (RESPONSE_CODE, BYTES_*, DURATION…) gives a number; an
  /// operator whose value is unknown, alone, gives null; anything else a string.
  std::vector<std::pair<std::string, LogTemplate>> fields;
  /// Json: what opens each member, escaped once here instead of on every line: `{"name":`
  /// for the first, `,"name":` for the others (make_access_log_spec fills it; a spec built
  /// by hand may leave it empty, and the formatter then escapes the names itself).
  std::vector<std::string> json_keys;
  /// Json: the fields are the default ones (make_access_log_spec with no format), which the
  /// formatter writes without interpreting them.
  bool default_json = false;
  bool operator==(const AccessLogSpec&) const = default;
};

/// Istio's default text format (its MeshConfig default, Envoy's plus response code details,
/// upstream addresses, SNI and route name), newline included.
extern const std::string_view kDefaultTextLogFormat;

/// Builds an access log's spec from the mesh's settings: `format` "" = the encoding's default
/// (text: kDefaultTextLogFormat; json: Istio's JSON fields plus meshbox's identities and
/// reporter); else, text: a format string (a newline is added if it has none); json: a JSON
/// object of member name → format string, as Istio's accessLogFormat with JSON encoding.
/// Errors are reported with their offset in `format`.
std::optional<LogFormatError> make_access_log_spec(std::string path, LogEncoding encoding,
                                                   std::string_view format, AccessLogSpec& out);

/// A shared_ptr<const AccessLogSpec> that compares by content: listeners compare with ==,
/// and an unchanged access log must not make a snapshot look changed.
class AccessLogSpecPtr {
 public:
  AccessLogSpecPtr() = default;
  AccessLogSpecPtr(std::shared_ptr<const AccessLogSpec> p) : p_(std::move(p)) {}  // NOLINT
  AccessLogSpecPtr(std::shared_ptr<AccessLogSpec> p) : p_(std::move(p)) {}        // NOLINT
  const AccessLogSpec* get() const { return p_.get(); }
  const AccessLogSpec* operator->() const { return p_.get(); }
  const AccessLogSpec& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }
  bool operator==(const AccessLogSpecPtr& o) const {
    return p_ == o.p_ || (p_ && o.p_ && *p_ == *o.p_);
  }

 private:
  std::shared_ptr<const AccessLogSpec> p_;
};

}  // namespace meshbox::config
