#include "plane/config/access_log_format.h"

#include <fmt/format.h>

#include <array>

#include "core/base/json.h"

namespace meshbox::config {

namespace {

enum class Arg { None, Required, Optional };

struct OpName {
  std::string_view name;
  LogOp op;
  Arg arg;
};

constexpr std::array kOps = {
    OpName{"START_TIME", LogOp::StartTime, Arg::Optional},
    OpName{"REQ", LogOp::Req, Arg::Required},
    OpName{"RESP", LogOp::Resp, Arg::Required},
    OpName{"RESPONSE_CODE", LogOp::ResponseCode, Arg::None},
    OpName{"RESPONSE_FLAGS", LogOp::ResponseFlags, Arg::None},
    OpName{"RESPONSE_CODE_DETAILS", LogOp::ResponseCodeDetails, Arg::None},
    OpName{"CONNECTION_TERMINATION_DETAILS", LogOp::ConnectionTerminationDetails, Arg::None},
    OpName{"UPSTREAM_TRANSPORT_FAILURE_REASON", LogOp::UpstreamTransportFailureReason, Arg::None},
    OpName{"BYTES_RECEIVED", LogOp::BytesReceived, Arg::None},
    OpName{"BYTES_SENT", LogOp::BytesSent, Arg::None},
    OpName{"DURATION", LogOp::Duration, Arg::None},
    OpName{"RESPONSE_DURATION", LogOp::ResponseDuration, Arg::None},
    OpName{"UPSTREAM_HOST", LogOp::UpstreamHost, Arg::None},
    OpName{"UPSTREAM_CLUSTER", LogOp::UpstreamCluster, Arg::None},
    OpName{"UPSTREAM_LOCAL_ADDRESS", LogOp::UpstreamLocalAddress, Arg::None},
    OpName{"DOWNSTREAM_LOCAL_ADDRESS", LogOp::DownstreamLocalAddress, Arg::None},
    OpName{"DOWNSTREAM_REMOTE_ADDRESS", LogOp::DownstreamRemoteAddress, Arg::None},
    OpName{"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", LogOp::DownstreamRemoteAddressWithoutPort,
           Arg::None},
    OpName{"DOWNSTREAM_PEER_URI_SAN", LogOp::DownstreamPeerUriSan, Arg::None},
    OpName{"UPSTREAM_PEER_URI_SAN", LogOp::UpstreamPeerUriSan, Arg::None},
    OpName{"REQUESTED_SERVER_NAME", LogOp::RequestedServerName, Arg::None},
    OpName{"ROUTE_NAME", LogOp::RouteName, Arg::None},
    OpName{"PROTOCOL", LogOp::Protocol, Arg::None},
    OpName{"SOURCE_WORKLOAD", LogOp::SourceWorkload, Arg::None},
    OpName{"SOURCE_NAMESPACE", LogOp::SourceNamespace, Arg::None},
    OpName{"SOURCE_PRINCIPAL", LogOp::SourcePrincipal, Arg::None},
    OpName{"SOURCE_APP", LogOp::SourceApp, Arg::None},
    OpName{"SOURCE_VERSION", LogOp::SourceVersion, Arg::None},
    OpName{"DESTINATION_WORKLOAD", LogOp::DestinationWorkload, Arg::None},
    OpName{"DESTINATION_NAMESPACE", LogOp::DestinationNamespace, Arg::None},
    OpName{"DESTINATION_PRINCIPAL", LogOp::DestinationPrincipal, Arg::None},
    OpName{"DESTINATION_APP", LogOp::DestinationApp, Arg::None},
    OpName{"DESTINATION_VERSION", LogOp::DestinationVersion, Arg::None},
    OpName{"DESTINATION_SERVICE", LogOp::DestinationService, Arg::None},
    OpName{"REPORTER", LogOp::Reporter, Arg::None},
};

// Bounds that keep a hostile or mistaken config from making lines huge.
constexpr size_t kMaxArg = 256;
constexpr size_t kMaxLen = 1'000'000;

bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool valid_header_name(std::string_view name) {
  if (name.empty()) return false;
  size_t i = name.front() == ':' ? 1 : 0;  // :method, :path, :authority
  if (i == name.size()) return false;
  for (; i < name.size(); ++i) {
    char c = name[i];
    bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 std::string_view("!#$&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!tchar) return false;
  }
  return true;
}

void add_literal(LogTemplate& out, std::string_view text) {
  if (text.empty()) return;
  if (!out.empty() && out.back().op == LogOp::Literal) {
    out.back().text += text;
    return;
  }
  LogToken t;
  t.text = std::string(text);
  out.push_back(std::move(t));
}

// Istio's JSON access log fields (MeshConfig's default JSON format) that meshbox can fill,
// then meshbox's identities of the call. Fields meshbox never knows (response code details,
// upstream local address, SNI…) are left out rather than always null.
constexpr std::array<std::pair<std::string_view, std::string_view>, 27> kDefaultJsonFields = {{
    {"start_time", "%START_TIME%"},
    {"route_name", "%ROUTE_NAME%"},
    {"method", "%REQ(:METHOD)%"},
    {"path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"},
    {"protocol", "%PROTOCOL%"},
    {"response_code", "%RESPONSE_CODE%"},
    {"response_flags", "%RESPONSE_FLAGS%"},
    {"bytes_received", "%BYTES_RECEIVED%"},
    {"bytes_sent", "%BYTES_SENT%"},
    {"duration", "%DURATION%"},
    {"x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"},
    {"user_agent", "%REQ(USER-AGENT)%"},
    {"request_id", "%REQ(X-REQUEST-ID)%"},
    {"authority", "%REQ(:AUTHORITY)%"},
    {"upstream_host", "%UPSTREAM_HOST%"},
    {"upstream_cluster", "%UPSTREAM_CLUSTER%"},
    {"downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"},
    {"downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"},
    {"reporter", "%REPORTER%"},
    {"source_workload", "%SOURCE_WORKLOAD%"},
    {"source_namespace", "%SOURCE_NAMESPACE%"},
    {"source_principal", "%SOURCE_PRINCIPAL%"},
    {"destination_workload", "%DESTINATION_WORKLOAD%"},
    {"destination_namespace", "%DESTINATION_NAMESPACE%"},
    {"destination_principal", "%DESTINATION_PRINCIPAL%"},
    {"destination_service", "%DESTINATION_SERVICE%"},
    {"upstream_service_time", "%RESPONSE_DURATION%"},
}};

void make_json_keys(AccessLogSpec& spec) {
  spec.json_keys.clear();
  for (const auto& [name, tpl] : spec.fields) {
    std::string key(spec.json_keys.empty() ? "{" : ",");
    json::append_string(key, name);
    key += ':';
    spec.json_keys.push_back(std::move(key));
  }
}

}  // namespace

LogHeader log_header(std::string_view name) {
  if (name == ":method") return LogHeader::Method;
  if (name == ":path") return LogHeader::Path;
  if (name == ":authority" || name == "host") return LogHeader::Authority;
  if (name == "user-agent") return LogHeader::UserAgent;
  if (name == "x-request-id") return LogHeader::RequestId;
  if (name == "x-forwarded-for") return LogHeader::ForwardedFor;
  return LogHeader::None;
}

const std::string_view kDefaultTextLogFormat =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    "\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% "
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

std::optional<LogFormatError> parse_log_template(std::string_view f, LogTemplate& out) {
  out.clear();
  size_t lit = 0;  // start of the pending literal
  size_t i = 0;
  while (i < f.size()) {
    if (f[i] != '%') {
      ++i;
      continue;
    }
    add_literal(out, f.substr(lit, i - lit));
    size_t start = i;
    if (i + 1 < f.size() && f[i + 1] == '%') {
      add_literal(out, "%");
      i += 2;
      lit = i;
      continue;
    }
    size_t name_end = i + 1;
    while (name_end < f.size() && is_name_char(f[name_end]))
      ++name_end;
    std::string_view name = f.substr(i + 1, name_end - i - 1);
    if (name_end >= f.size())
      return LogFormatError{start,
                            "a '%' that starts a command operator is never closed "
                            "(write %% for a literal '%')"};
    if (name.empty())
      return LogFormatError{start, fmt::format("expected a command operator after '%', got "
                                               "'{}' (write %% for a literal '%')",
                                               f[name_end])};
    const OpName* op = nullptr;
    for (const auto& o : kOps)
      if (o.name == name) op = &o;
    if (!op) return LogFormatError{start, fmt::format("unknown command operator %{}%", name)};
    LogToken t;
    t.op = op->op;
    size_t j = name_end;
    bool has_arg = false;
    if (f[j] == '(') {
      size_t close = f.find(')', j + 1);
      if (close == std::string_view::npos)
        return LogFormatError{start, fmt::format("%{}(: the argument has no ')'", name)};
      std::string_view arg = f.substr(j + 1, close - j - 1);
      if (op->arg == Arg::None)
        return LogFormatError{start, fmt::format("%{}% takes no argument", name)};
      if (arg.size() > kMaxArg)
        return LogFormatError{
            start, fmt::format("%{}(…)%: the argument is longer than {} bytes", name, kMaxArg)};
      has_arg = true;
      if (op->op == LogOp::StartTime) {
        t.text = std::string(arg);
      } else {
        std::string_view main = arg, alt;
        if (size_t q = arg.find('?'); q != std::string_view::npos) {
          main = arg.substr(0, q);
          alt = arg.substr(q + 1);
          if (op->op != LogOp::Req || !valid_header_name(alt))
            return LogFormatError{
                start, fmt::format("%{}({})%: expected a header name, or two as NAME?ALTERNATIVE",
                                   name, arg)};
        }
        if (!valid_header_name(main))
          return LogFormatError{start, fmt::format("%{}({})%: expected a header name", name, arg)};
        t.text = lower(main);
        t.alt = lower(alt);
        t.header = log_header(t.text);
        t.alt_header = log_header(t.alt);
      }
      j = close + 1;
      if (j < f.size() && f[j] == ':') {
        size_t k = j + 1;
        uint64_t n = 0;
        while (k < f.size() && f[k] >= '0' && f[k] <= '9' && n <= kMaxLen)
          n = n * 10 + static_cast<uint64_t>(f[k++] - '0');
        if (k == j + 1 || n == 0 || n > kMaxLen)
          return LogFormatError{
              start, fmt::format("%{}(…):N%: N must be a length from 1 to {}", name, kMaxLen)};
        t.max_len = n;
        j = k;
      }
    }
    if (op->arg == Arg::Required && !has_arg)
      return LogFormatError{start, fmt::format("%{}% needs an argument: %{}(NAME)%", name, name)};
    if (j >= f.size() || f[j] != '%')
      return LogFormatError{start, fmt::format("%{}: expected '%' to close the command operator",
                                               f.substr(start + 1, j - start - 1))};
    out.push_back(std::move(t));
    i = j + 1;
    lit = i;
  }
  add_literal(out, f.substr(lit));
  return std::nullopt;
}

std::optional<LogFormatError> make_access_log_spec(std::string path, LogEncoding encoding,
                                                   std::string_view format, AccessLogSpec& out) {
  out = AccessLogSpec{};
  out.path = std::move(path);
  out.encoding = encoding;
  if (encoding == LogEncoding::Text) {
    std::string text(format.empty() ? kDefaultTextLogFormat : format);
    if (text.back() != '\n') text += '\n';
    return parse_log_template(text, out.line);
  }
  if (format.empty()) {
    for (const auto& [name, f] : kDefaultJsonFields) {
      LogTemplate t;
      (void)parse_log_template(f, t);  // constant formats: they parse
      out.fields.emplace_back(std::string(name), std::move(t));
    }
    make_json_keys(out);
    out.default_json = true;
    return std::nullopt;
  }
  auto doc = json::parse(format);
  if (!doc)
    return LogFormatError{0,
                          "with access_log_encoding \"json\", the format is a JSON object of "
                          "name → format string: " +
                              doc.error().message()};
  if (!doc->is_object() || doc->object.empty())
    return LogFormatError{0,
                          "with access_log_encoding \"json\", the format is a JSON object of "
                          "name → format string, like {\"code\": \"%RESPONSE_CODE%\"}"};
  for (const auto& [name, value] : doc->object) {
    if (!value.is_string())
      return LogFormatError{0, fmt::format("member \"{}\": expected a format string", name)};
    LogTemplate t;
    if (auto err = parse_log_template(value.string, t))
      return LogFormatError{0, fmt::format("member \"{}\": {}", name, err->message)};
    out.fields.emplace_back(name, std::move(t));
  }
  make_json_keys(out);
  return std::nullopt;
}

}  // namespace meshbox::config
