#include "cli/admin_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/base/json.h"
#include "core/http/parser.h"
#include "core/loop/address.h"

namespace meshbox::cli {

namespace {

using Clock = std::chrono::steady_clock;

/// strerror, starting lower case, to read well after a colon.
std::string error_text(int err) {
  std::string s = std::strerror(err);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

/// Closes the socket on every return path.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

/// Collects the final response; 1xx heads (100 Continue) are skipped.
class ReplyReader : public http::ParserCallbacks {
 public:
  void on_response_head(http::ResponseHead& head) override {
    if (head.status < 200) return;
    reply.status = head.status;
    if (const std::string* ct = head.headers.get("content-type")) reply.content_type = *ct;
  }
  void on_body(const char* data, size_t len) override {
    if (reply.status >= 200) reply.body.append(data, len);
  }
  void on_message_complete() override {
    if (reply.status >= 200) done = true;
  }

  AdminReply reply;
  bool done = false;
};

class Call {
 public:
  Call(const std::string& address, uint64_t timeout_ms)
      : address_(address),
        timeout_ms_(timeout_ms),
        deadline_(Clock::now() + std::chrono::milliseconds(timeout_ms)) {}

  Status unreachable(const std::string& why) const {
    return make_error(Code::Unavailable, "cannot reach the meshbox admin API at " + address_ +
                                             ": " + why + " (is `meshbox run` running?)");
  }
  Status failed(const std::string& why) const {
    return make_error(Code::Unavailable, "the meshbox admin API at " + address_ + " " + why);
  }
  Status timed_out() const {
    return make_error(Code::Unavailable, "the meshbox admin API at " + address_ +
                                             " did not answer within " +
                                             std::to_string(timeout_ms_) + " ms");
  }

  /// Waits for `events` on `fd` until the deadline; false once it has passed.
  bool wait(int fd, short events) const {
    for (;;) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd, events, 0};
      int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 60'000)));
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return true;  // let the next syscall report the error
    }
  }

 private:
  std::string address_;
  uint64_t timeout_ms_;
  Clock::time_point deadline_;
};

std::string build_request(std::string_view method, std::string_view target, std::string_view body,
                          const std::string& token, const std::string& host) {
  std::string req;
  req.reserve(256 + body.size());
  req.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  req.append("Host: ").append(host).append("\r\n");
  req.append("Connection: close\r\n");
  req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  if (!token.empty()) req.append("Authorization: Bearer ").append(token).append("\r\n");
  if (!body.empty()) {
    size_t first = body.find_first_not_of(" \t\r\n");
    bool json = first != std::string_view::npos && body[first] == '{';
    req.append("Content-Type: ")
        .append(json ? "application/json" : "application/toml")
        .append("\r\n");
  }
  req.append("\r\n");
  req.append(body);
  return req;
}

}  // namespace

Result<AdminReply> admin_call(const std::string& address, std::string_view method,
                              std::string_view target, std::string_view body,
                              const std::string& token, uint64_t timeout_ms) {
  auto addr = loop::Address::parse(address);
  if (!addr)
    return make_error(Code::InvalidArgument,
                      "invalid admin API address: " + addr.error().message());
  // A header or request line with a line break in it would be another request.
  auto clean = [](std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; };
  if (method.empty() || !clean(method) || !clean(target) || !clean(token) || target.empty())
    return make_error(Code::InvalidArgument, "invalid admin API request");

  Call call(address, timeout_ms);
  Socket sock(::socket(addr->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (sock.fd() < 0) return call.unreachable("socket: " + error_text(errno));

  // Connect, bounded by the deadline.
  if (::connect(sock.fd(), addr->sa(), addr->len()) != 0) {
    if (errno != EINPROGRESS) return call.unreachable(error_text(errno));
    if (!call.wait(sock.fd(), POLLOUT))
      return call.unreachable("no connection within " + std::to_string(timeout_ms) + " ms");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(sock.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return call.unreachable(error_text(err));
  }

  // Host is required in HTTP/1.1; ":15000" (any interface) is no valid Host value.
  std::string host = !address.empty() && address[0] == ':' ? addr->to_string() : address;
  std::string request = build_request(method, target, body, token, host);
  // Send. If the server answers early and closes (a 413 before the body is in), sending
  // fails: stop and read what it said.
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(sock.fd(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!call.wait(sock.fd(), POLLOUT)) return call.timed_out();
      continue;
    }
    break;
  }

  // Read the whole response.
  ReplyReader reader;
  http::Parser parser(http::Parser::Kind::Response, reader);
  parser.expect_response_to(method);
  char buf[16 * 1024];
  while (!reader.done) {
    ssize_t n = ::recv(sock.fd(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!call.wait(sock.fd(), POLLIN)) return call.timed_out();
        continue;
      }
      return call.failed("dropped the connection: " + error_text(errno));
    }
    if (n == 0) {
      // The close ends a body without framing; anything else cut short is an error.
      if (!parser.finish() || !reader.done)
        return call.failed("closed the connection before the response was complete");
      break;
    }
    const char* p = buf;
    size_t left = static_cast<size_t>(n);
    while (left > 0 && !reader.done) {
      auto r = parser.feed(p, left);
      if (r.state == http::Parser::State::Paused) {
        // The end of a 1xx interim response: the final one follows.
        p += r.consumed;
        left -= r.consumed;
        parser.resume();
        continue;
      }
      if (r.state != http::Parser::State::Ok)
        return call.failed(std::string("sent a malformed response: ") + parser.error_reason());
      break;
    }
  }
  return std::move(reader.reply);
}

namespace {

// A small file's text without its trailing newlines and spaces; "" if unreadable.
std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

}  // namespace

Result<AdminEndpoint> find_admin(const std::string& state_dir, const std::string& admin,
                                 const std::string& token_file, bool need_token) {
  AdminEndpoint e;
  e.address = admin.empty() ? read_text(state_dir + "/admin.address") : admin;
  if (e.address.empty())
    return Status(Code::NotFound, "no admin address in " + state_dir +
                                      "/admin.address: is `meshbox run` running with "
                                      "--state-dir " +
                                      state_dir + "? (or pass --admin ADDR)");
  if (need_token) {
    std::string file = token_file.empty() ? state_dir + "/admin.token" : token_file;
    e.token = read_text(file);
    if (e.token.empty())
      return Status(Code::NotFound, "cannot read the admin token " + file +
                                        " (it is readable by the user of `meshbox run` only; "
                                        "or pass --token-file PATH)");
  }
  return e;
}

std::string reply_error(const AdminReply& r) {
  auto v = json::parse(r.body);
  if (v)
    if (const json::Value* e = v->get("error"); e && e->is_string()) return e->as_string();
  return fmt::format("HTTP {}: {}", r.status, r.body);
}

}  // namespace meshbox::cli
