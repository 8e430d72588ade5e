// `meshbox run` with a service entry of resolution "dns": the control plane resolves its host
// against a real (small) DNS server run by the test on 127.0.0.1:RANDOM (named in
// STATE_DIR/resolv.conf), sends gateway traffic to the address it got, and follows the answer
// when it changes at the next TTL. The two addresses are two meshbox-httpbin backends on
// 127.0.0.2:P and 127.0.0.3:P (all of 127.0.0.0/8 is loopback on Linux).
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

using namespace std::chrono_literals;
constexpr auto kTimeout = 10s;

// A DNS server for one name: A queries for it get the current address with a TTL of 1 s;
// AAAA queries get an empty answer (NOERROR, no record); other names NXDOMAIN. It answers
// from a thread of its own until destroyed.
class TinyDns {
 public:
  TinyDns(std::string name, std::string address) : name_(std::move(name)), address_(address) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 || ::pipe(stop_) != 0)
      throw std::runtime_error("TinyDns: cannot bind 127.0.0.1:0");
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~TinyDns() {
    char c = 'x';
    (void)!::write(stop_[1], &c, 1);
    thread_.join();
    ::close(fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }

  uint16_t port() const { return port_; }
  void set_address(const std::string& a) {
    std::lock_guard<std::mutex> lock(mu_);
    address_ = a;
  }
  int a_queries() const { return a_queries_; }

 private:
  void serve() {
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents) return;
      unsigned char q[512];
      sockaddr_storage from{};
      socklen_t from_len = sizeof from;
      ssize_t n = ::recvfrom(fd_, q, sizeof q, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 17) continue;
      std::string reply = answer(q, static_cast<size_t>(n));
      if (!reply.empty())
        ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
    }
  }

  // The reply to one query: its header turned into a response, its question, and an A record
  // whose owner points back at the question (offset 12).
  std::string answer(const unsigned char* q, size_t n) {
    size_t p = 12;
    std::string qname;
    while (p < n && q[p] != 0) {
      size_t len = q[p];
      if (p + 1 + len >= n) return "";
      if (!qname.empty()) qname += '.';
      qname.append(reinterpret_cast<const char*>(q + p + 1), len);
      p += 1 + len;
    }
    if (p + 5 > n) return "";
    size_t question_end = p + 5;
    uint16_t qtype = static_cast<uint16_t>((q[p + 1] << 8) | q[p + 2]);
    bool ours = qname == name_;
    bool a = ours && qtype == 1;
    std::string r(reinterpret_cast<const char*>(q), question_end);
    r[2] = static_cast<char>(0x81);                // QR, RD
    r[3] = static_cast<char>(ours ? 0x80 : 0x83);  // RA; NOERROR or NXDOMAIN
    r[4] = 0, r[5] = 1;                            // one question
    r[6] = 0, r[7] = a ? 1 : 0;                    // answers
    r[8] = r[9] = r[10] = r[11] = 0;
    if (a) {
      ++a_queries_;
      in_addr ip{};
      {
        std::lock_guard<std::mutex> lock(mu_);
        inet_pton(AF_INET, address_.c_str(), &ip);
      }
      const unsigned char rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4};  // A IN TTL 1
      r.append(reinterpret_cast<const char*>(rr), sizeof rr);
      r.append(reinterpret_cast<const char*>(&ip), 4);
    }
    return r;
  }

  std::string name_;
  std::mutex mu_;
  std::string address_;
  int fd_ = -1;
  int stop_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<int> a_queries_{0};
  std::thread thread_;
};

// The backend that answered a GET through the gateway ("" if none did).
std::string backend_behind(const std::string& gateway) {
  HttpResponse r =
      exchange(gateway, "GET / HTTP/1.1\r\nHost: ext.example.test\r\nConnection: close\r\n\r\n",
               Deadline(kTimeout));
  if (!r.complete || r.status != 200) return "";
  const std::string* b = r.header("x-backend-name");
  return b ? *b : "";
}

// The addresses /endpoints lists for `host`.
std::set<std::string> endpoint_addresses(const Mesh& mesh, const std::string& host) {
  std::set<std::string> out;
  auto r = curl_http({"http://" + mesh.admin() + "/endpoints"}, Deadline(kTimeout));
  if (r.status != 200) return out;
  auto j = parse_json(r.body);
  if (!j) return out;
  for (const auto& e : j->array) {
    const Json* h = e.get("host");
    const Json* a = e.get("address");
    if (h && a && h->string == host) out.insert(a->string);
  }
  return out;
}

TEST_CASE("dns: a service entry follows its DNS answer when it changes at the TTL") {
  TempDir dir;
  // Both backends on one port P, on two loopback addresses.
  Httpbin b2(dir, "b2", "127.0.0.2:0");
  std::string port = b2.address().substr(b2.address().rfind(':') + 1);
  Httpbin b3(dir, "b3", "127.0.0.3:" + port);
  REQUIRE(b3.address() == "127.0.0.3:" + port);

  TinyDns dns("ext.example.test", "127.0.0.2");
  std::string state = dir.file("state");
  REQUIRE(::mkdir(state.c_str(), 0700) == 0);
  std::ofstream(state + "/resolv.conf")
      << "# written by the test: its own DNS server\n"
      << "nameserver 127.0.0.1:" << dns.port() << "\noptions timeout:1 attempts:2\n";

  uint16_t gw_port = free_port();
  std::ofstream(dir.file("mesh.toml"))
      << "[[service_entry]]\nname = \"ext\"\nhosts = [\"ext.example.test\"]\n"
      << "ports = [{ number = " << port << ", name = \"http\", protocol = \"http\" }]\n"
      << "resolution = \"dns\"\nlocation = \"mesh_external\"\n\n"
      << "[[gateway]]\nname = \"edge\"\nservers = [{ port = " << gw_port
      << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
      << "[[virtual_service]]\nname = \"ext\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
      << "http = [{ route = [{ destination = { host = \"ext.example.test\", port = { number = "
      << port << " } } }] }]\n";
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}, .state_dir = state});
  std::string gw = mesh.listener("127.0.0.1_" + std::to_string(gw_port));

  // The first answer: every request goes to 127.0.0.2.
  CHECK(eventually([&] { return backend_behind(gw) == "b2"; }, 5s));
  CHECK(backend_behind(gw) == "b2");
  CHECK(endpoint_addresses(mesh, "ext.example.test") == std::set<std::string>{"127.0.0.2"});
  int queries = dns.a_queries();
  CHECK(queries >= 1);

  // The answer changes: within the TTL (1 s) plus a push, traffic moves to 127.0.0.3.
  dns.set_address("127.0.0.3");
  auto changed = Deadline::Clock::now();
  CHECK(eventually([&] { return backend_behind(gw) == "b3"; }, 5s));
  MESSAGE("traffic moved " << ms_since(changed) << " ms after the DNS answer changed");
  CHECK(ms_since(changed) < 4000);
  CHECK(backend_behind(gw) == "b3");
  CHECK(endpoint_addresses(mesh, "ext.example.test") == std::set<std::string>{"127.0.0.3"});
  CHECK(dns.a_queries() > queries);  // re-resolved, not cached forever
  CHECK(mesh.log().find("ext.example.test is 127.0.0.3") != std::string::npos);
}

}  // namespace
}  // namespace meshbox::test
