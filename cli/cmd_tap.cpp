// meshbox tap SERVICE: the live requests to and from a service's workloads, as a running
// meshbox's admin API streams them (GET /tap, plane/control/tap_api.h), one line each, until
// Ctrl-C or --max requests. Like `linkerd viz tap`.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "cli/admin_client.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/base/json.h"
#include "core/http/parser.h"
#include "core/loop/address.h"

namespace meshbox::cli {

namespace {

constexpr const char* kTapUsage = R"(usage: meshbox tap SERVICE [flags]

Streams the live requests to and from SERVICE's workloads (its inbound sidecars' and its
outbound sidecars'), one line each, until Ctrl-C or --max requests:

  TIME REPORTER METHOD AUTHORITY PATH STATUS FLAGS LATENCY BYTES-IN/OUT SOURCE -> DESTINATION ID

SOURCE and DESTINATION are workload(principal); the principal is the SPIFFE ID of an mTLS
peer, "-" when unknown. Each worker passes at most 200 requests a second to taps; the rest
are dropped (GET /tap/sessions counts them).

flags:
  --path PREFIX         only requests whose path starts with PREFIX
  --method M            only requests with method M (GET, POST, ...)
  --max N               stop after N requests
  -o, --output FORMAT   text (default) or json: the API's JSON lines as they are
  --state-dir DIR       where `meshbox run` keeps its state (default ./.meshbox)
  --admin ADDR          the admin API (default: STATE_DIR/admin.address)
  --token-file PATH     the admin token (default: STATE_DIR/admin.token)
)";

int usage_error(const std::string& message) {
  fmt::print(stderr, "meshbox tap: {}\nrun 'meshbox tap --help' for usage\n", message);
  return 2;
}

/// Percent-encodes a query parameter's value.
std::string encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string_view or_dash(std::string_view s) {
  return s.empty() ? std::string_view("-") : s;
}

std::string str(const json::Value& v, std::string_view key) {
  const json::Value* f = v.get(key);
  return f && f->is_string() ? f->as_string() : std::string();
}

double num(const json::Value& v, std::string_view key) {
  const json::Value* f = v.get(key);
  return f ? f->as_number().value_or(0) : 0;
}

/// "web-v1(spiffe://cluster.local/ns/default/sa/web)", "-" for nobody.
std::string peer(const json::Value* side) {
  if (!side) return "-";
  std::string workload = str(*side, "workload"), principal = str(*side, "principal");
  if (workload.empty() && principal.empty()) return "-";
  return fmt::format("{}({})", or_dash(workload), or_dash(principal));
}

/// One event as a text line.
std::string text_line(const json::Value& e) {
  int status = static_cast<int>(num(e, "status"));
  // "14:40:01.123" of "2026-11-26T14:40:01.123456Z".
  std::string time = str(e, "time");
  if (time.size() >= 23) time = time.substr(11, 12);
  return fmt::format("{} {} {} {} {} {} {} {:.1f}ms {}B/{}B {} -> {} {}", time,
                     str(e, "reporter") == "destination" ? "in " : "out", str(e, "method"),
                     or_dash(str(e, "authority")), str(e, "path"),
                     status == 0 ? std::string("-") : std::to_string(status),
                     or_dash(str(e, "flags")), num(e, "duration_ms"),
                     static_cast<uint64_t>(num(e, "request_bytes")),
                     static_cast<uint64_t>(num(e, "response_bytes")), peer(e.get("source")),
                     peer(e.get("destination")), or_dash(str(e, "request_id")));
}

/// Reads the streamed response: prints each JSON line as it completes.
class TapReader : public http::ParserCallbacks {
 public:
  explicit TapReader(bool json) : json_(json) {}

  void on_response_head(http::ResponseHead& head) override { status = head.status; }
  void on_body(const char* data, size_t len) override {
    if (status != 200) {
      error_body.append(data, len);
      return;
    }
    pending_.append(data, len);
    size_t start = 0;
    for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1)
      print(std::string_view(pending_).substr(start, nl - start));
    pending_.erase(0, start);
  }
  void on_message_complete() override { done = true; }

  int status = 0;
  std::string error_body;
  uint64_t printed = 0;
  bool done = false;

 private:
  void print(std::string_view line) {
    if (line.empty()) return;
    ++printed;
    if (json_) {
      fmt::print("{}\n", line);
    } else if (auto v = json::parse(line); v && v->is_object()) {
      fmt::print("{}\n", text_line(*v));
    } else {
      fmt::print("{}\n", line);
    }
    std::fflush(stdout);
  }

  bool json_;
  std::string pending_;
};

}  // namespace

int cmd_tap(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    fmt::print("{}", kTapUsage);
    return 0;
  }
  // kubectl's short spelling of --output.
  std::vector<std::string> owned(argv, argv + argc);
  for (auto& a : owned)
    if (a == "-o") a = "--output";
  std::vector<char*> av;
  for (auto& a : owned)
    av.push_back(a.data());
  auto args = Args::parse(
      static_cast<int>(av.size()), av.data(), 2,
      {{"path"}, {"method"}, {"max"}, {"output"}, {"state-dir"}, {"admin"}, {"token-file"}});
  if (!args) return usage_error(args.error().message());
  if (args->positional().size() != 1) return usage_error("expected one SERVICE");
  std::string output = args->get("output").value_or("text");
  if (output != "text" && output != "json") return usage_error("-o must be text or json");
  std::string target = "/tap?service=" + encode(args->positional()[0]);
  if (auto p = args->get("path")) {
    if (p->empty() || p->front() != '/') return usage_error("--path must start with '/'");
    target += "&path=" + encode(*p);
  }
  if (auto m = args->get("method")) {
    std::string method = *m;
    for (char& c : method)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    target += "&method=" + encode(method);
  }
  if (auto n = args->get("max")) {
    if (n->empty() || n->find_first_not_of("0123456789") != std::string::npos || *n == "0")
      return usage_error("--max must be a positive whole number");
    target += "&max=" + *n;
  }

  auto ep = find_admin(args->get("state-dir").value_or(".meshbox"), args->get("admin").value_or(""),
                       args->get("token-file").value_or(""), true);
  if (!ep) {
    fmt::print(stderr, "meshbox tap: {}\n", ep.error().message());
    return 1;
  }
  auto addr = loop::Address::parse(ep->address);
  if (!addr) {
    fmt::print(stderr, "meshbox tap: invalid admin API address: {}\n", addr.error().message());
    return 1;
  }
  auto fail = [&](const std::string& why) {
    fmt::print(stderr, "meshbox tap: the meshbox admin API at {}: {}\n", ep->address, why);
    return 1;
  };
  int fd = ::socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, addr->sa(), addr->len()) != 0)
    return fail(std::string(std::strerror(errno)) + " (is `meshbox run` running?)");
  std::string host = ep->address[0] == ':' ? addr->to_string() : ep->address;
  std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
      target, host, ep->token);
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(std::strerror(errno));
    sent += static_cast<size_t>(n);
  }

  // Blocking reads: the stream has no end but --max or Ctrl-C (which ends the process, and
  // the closed connection ends the session).
  TapReader reader(output == "json");
  http::Parser parser(http::Parser::Kind::Response, reader);
  parser.expect_response_to("GET");
  char buf[16 * 1024];
  while (!reader.done) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(std::string("dropped the connection: ") + std::strerror(errno));
    if (n == 0) {
      if (!parser.finish() || !reader.done) return fail("closed the stream");
      break;
    }
    auto r = parser.feed(buf, static_cast<size_t>(n));
    if (r.state != http::Parser::State::Ok && !reader.done)
      return fail(std::string("sent a malformed response: ") + parser.error_reason());
  }
  if (reader.status != 200) {
    AdminReply reply{reader.status, "application/json", reader.error_body};
    fmt::print(stderr, "meshbox tap: {}\n", reply_error(reply));
    return 1;
  }
  return 0;
}

}  // namespace meshbox::cli
