// Test fixtures for core/tls/tls_transport.h: a test CA issuing SPIFFE leaves (through
// certificate_builder), one end of a connection that records what its callbacks see, and a
// TLS listener on 127.0.0.1:0. Header-only, for test/unit/core/tls.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/loop/address.h"
#include "core/loop/loop.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/tcp_listener.h"
#include "core/tls/certificate_builder.h"
#include "core/tls/tls_context.h"
#include "core/tls/tls_transport.h"
#include "test/support/test_loop.h"

namespace meshbox::tls::test {

using namespace std::chrono_literals;

inline PrivateKey new_key() {
  auto k = PrivateKey::generate_p256();
  REQUIRE(k);
  return *k;
}

// A root CA that issues leaves for both ends of mTLS.
struct TestCa {
  explicit TestCa(std::string cn = "meshbox test root") : key(new_key()), cert(nullptr) {
    auto now = std::chrono::system_clock::now();
    CertificateSpec s;
    s.organization = "meshbox-test";
    s.common_name = std::move(cn);
    s.not_before = now - 1h;
    s.not_after = now + 24h * 30;
    s.is_ca = true;
    auto c = sign_certificate(s, key, nullptr, key);
    REQUIRE_MESSAGE(c, c.error().message());
    cert = *c;
  }

  /// A leaf with `spiffe` as its URI SAN (none if "") and `dns` as DNS SANs.
  TlsIdentity issue(const std::string& spiffe, std::vector<std::string> dns = {}) const {
    auto now = std::chrono::system_clock::now();
    CertificateSpec s;
    s.organization = "meshbox-test";
    s.not_before = now - 1min;
    s.not_after = now + 24h;
    if (!spiffe.empty()) s.uri_sans = {spiffe};
    s.dns_sans = std::move(dns);
    PrivateKey leaf_key = new_key();
    auto c = sign_certificate(s, leaf_key, &cert, key);
    REQUIRE_MESSAGE(c, c.error().message());
    return TlsIdentity{{*c}, leaf_key, {}};
  }

  PrivateKey key;
  Certificate cert;
};

inline const std::string kServerId = "spiffe://cluster.local/ns/default/sa/reviews";
inline const std::string kClientId = "spiffe://cluster.local/ns/default/sa/productpage";

inline TlsContextConstPtr make_context(const TlsContextSpec& spec) {
  auto ctx = TlsContext::create(spec);
  REQUIRE_MESSAGE(ctx, ctx.error().message());
  return *ctx;
}

/// The mesh's server: TLS 1.3, client certificates required, issued by `ca`.
inline TlsContextSpec mesh_server_spec(const TestCa& ca, const std::string& id = kServerId) {
  TlsContextSpec s;
  s.role = TlsContextSpec::Role::Server;
  s.identities = {ca.issue(id)};
  s.trusted_roots = {ca.cert};
  s.client_certs = ClientCertMode::Require;
  s.min_version = TlsVersion::Tls13;
  return s;
}

/// The mesh's client: TLS 1.3, its own certificate, expecting `peer`.
inline TlsContextSpec mesh_client_spec(const TestCa& ca, const std::string& peer = kServerId) {
  TlsContextSpec s;
  s.role = TlsContextSpec::Role::Client;
  s.identities = {ca.issue(kClientId)};
  s.trusted_roots = {ca.cert};
  s.peer_spiffe_ids = {peer};
  s.min_version = TlsVersion::Tls13;
  return s;
}

// A checksum of a byte stream that does not depend on how the stream was cut into pieces,
// fast enough (8 bytes a step) not to be what a 16 MiB transfer measures.
class StreamHash {
 public:
  void add(const char* data, size_t len) {
    while (len > 0 && fill_ > 0) {  // finish the word a previous piece started
      tail_[fill_++] = data[0];
      ++data;
      --len;
      if (fill_ == 8) mix(tail_), fill_ = 0;
    }
    for (; len >= 8; data += 8, len -= 8)
      mix(data);
    if (len > 0) {  // here fill_ == 0 and len < 8
      std::memcpy(tail_, data, len);
      fill_ = len;
    }
  }
  uint64_t value() const {
    uint64_t h = h_;
    for (size_t i = 0; i < fill_; ++i)
      h = (h ^ static_cast<unsigned char>(tail_[i])) * 0x100000001b3ull;
    return h ^ (h >> 29);
  }

 private:
  void mix(const char* word) {
    uint64_t w;
    std::memcpy(&w, word, 8);
    h_ = ((h_ ^ w) * 0x9e3779b97f4a7c15ull);
    h_ ^= h_ >> 32;
  }
  uint64_t h_ = 0xcbf29ce484222325ull;
  char tail_[8] = {};
  size_t fill_ = 0;
};

// One end of a connection: records what its callbacks see.
class End : public loop::TcpConnCallbacks {
 public:
  End() = default;
  explicit End(loop::TcpConnPtr c) { attach(std::move(c)); }
  void attach(loop::TcpConnPtr c) {
    conn = std::move(c);
    conn->set_callbacks(this);
  }
  TlsTransport* tls() const { return conn ? TlsTransport::of(conn->transport()) : nullptr; }
  std::string error_detail() const { return tls() ? tls()->error_detail() : std::string(); }

  void on_data(const char* data, size_t len) override {
    if (!hash_only) received.append(data, len);
    hash.add(data, len);
    bytes += len;
    if (on_data_hook) on_data_hook(data, len);
  }
  void on_eof() override { ++eofs; }
  void on_error(int err) override { error = err; }
  void on_connected() override { ++connected; }
  void on_drained() override {
    ++drained;
    if (on_drained_hook) on_drained_hook();
  }
  void on_flushed() override { ++flushed; }

  loop::TcpConnPtr conn;
  std::string received;
  bool hash_only = false;
  StreamHash hash;
  size_t bytes = 0;
  int eofs = 0;
  int connected = 0;
  int error = 0;
  int drained = 0;
  int flushed = 0;
  std::function<void(const char*, size_t)> on_data_hook;
  std::function<void()> on_drained_hook;
};

inline loop::Address loopback(uint16_t port = 0) {
  auto a = loop::Address::parse("127.0.0.1:" + std::to_string(port));
  REQUIRE(a.has_value());
  return *a;
}

// A listener on 127.0.0.1:0 whose connections get TLS (or whatever on_accept does).
class TlsServer {
 public:
  TlsServer(loop::Loop& loop, TlsContextConstPtr ctx) : ctx_(std::move(ctx)) {
    auto fd = loop::bind_reuseport(loopback());
    REQUIRE(fd.has_value());
    auto l = loop::TcpListener::open(loop, *fd, [this](loop::TcpConnPtr c) {
      auto e = std::make_unique<End>(std::move(c));
      if (on_accept) {
        on_accept(*e);
      } else {
        e->conn->set_transport(TlsTransport::server(ctx_));
        e->conn->read_start();
      }
      peers.push_back(std::move(e));
    });
    REQUIRE(l.has_value());
    listener = std::move(*l);
  }
  loop::Address address() const { return loopback(listener->address().port()); }
  End& peer(size_t i = 0) { return *peers.at(i); }

  std::unique_ptr<loop::TcpListener> listener;
  std::vector<std::unique_ptr<End>> peers;
  std::function<void(End&)> on_accept;

 private:
  TlsContextConstPtr ctx_;
};

/// A TLS client connecting to `to`.
inline std::unique_ptr<End> dial_tls(loop::Loop& loop, const loop::Address& to,
                                     TlsContextConstPtr ctx, TlsClientOptions options = {}) {
  auto e = std::make_unique<End>(loop::TcpConn::create(loop));
  e->conn->set_transport(TlsTransport::client(std::move(ctx), std::move(options)));
  e->conn->read_start();
  REQUIRE(e->conn->connect(to).is_ok());
  return e;
}

}  // namespace meshbox::tls::test
