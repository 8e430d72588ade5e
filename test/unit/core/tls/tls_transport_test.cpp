// Tests for core/tls/tls_transport.h on real TcpConns over 127.0.0.1 (port 0): mTLS between a
// client and a server with certificates from a test CA and the SPIFFE IDs each end reads;
// refusals (wrong root on either side, wrong SPIFFE ID, TLS 1.2 against a 1.3 minimum, plain
// text to a TLS port), each with its reason; 16 MiB each way under backpressure, checksummed;
// half-close with close_notify; session resumption; certificates chosen by SNI; a listener
// that peeks at the first bytes and then turns TLS on. Every test ends with the loop closed
// clean; no sleeps, every wait has a deadline.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/tls/sniff.h"
#include "test/unit/core/tls/tls_fixture.h"

namespace meshbox::tls::test {
namespace {

using loop::kErrTransportHandshake;
using loop::Loop;
using loop::run_until;

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

TEST_CASE("tls: mTLS handshake, SPIFFE IDs on both ends, data both ways, ALPN") {
  Loop loop;
  {
    TestCa ca;
    auto server_spec = mesh_server_spec(ca);
    server_spec.alpn = {"h2", "http/1.1"};
    auto client_spec = mesh_client_spec(ca);
    client_spec.alpn = {"http/1.1"};
    TlsServer server(loop, make_context(server_spec));
    auto client = dial_tls(loop, server.address(), make_context(client_spec),
                           {.server_name = "reviews", .session_key = ""});
    // Written before the connection is even up: held until the handshake is done.
    client->conn->write("ping");
    CHECK(client->conn->pending() == 4);
    CHECK(run_until(
        loop, [&] { return server.peers.size() == 1 && server.peer().received == "ping"; }, 10s));
    End& srv = server.peer();
    CHECK(client->connected == 1);
    srv.conn->write("pong");
    CHECK(run_until(
        loop, [&] { return client->received == "pong"; }, 10s));

    TlsTransport* c = client->tls();
    TlsTransport* s = srv.tls();
    REQUIRE(c != nullptr);
    REQUIRE(s != nullptr);
    CHECK(c->ready());
    CHECK(s->ready());
    CHECK(c->peer_spiffe_id() == kServerId);
    CHECK(s->peer_spiffe_id() == kClientId);
    CHECK(c->peer_presented_certificate());
    CHECK(c->version() == "TLSv1.3");
    CHECK(s->version() == "TLSv1.3");
    CHECK(c->cipher().starts_with("TLS_"));
    CHECK(c->cipher() == s->cipher());
    CHECK(c->alpn() == "http/1.1");
    CHECK(s->alpn() == "http/1.1");
    CHECK(c->server_name() == "reviews");
    CHECK(s->server_name() == "reviews");
    CHECK_FALSE(c->resumed());
    CHECK(client->error == 0);
    CHECK(srv.error == 0);
    MESSAGE("negotiated " << c->version() << " " << c->cipher());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tls: a client that does not trust the server's root fails, and so does the server") {
  Loop loop;
  {
    TestCa ca, other("another root");
    TlsServer server(loop, make_context(mesh_server_spec(ca)));
    auto client = dial_tls(loop, server.address(), make_context(mesh_client_spec(other)));
    client->conn->write("never sent");
    CHECK(run_until(
        loop,
        [&] { return client->error != 0 && server.peers.size() == 1 && server.peer().error != 0; },
        10s));
    CHECK(client->error == kErrTransportHandshake);
    CHECK(client->connected == 0);
    CHECK(std::string(loop::uv_error(client->error)) == "TLS handshake failed");
    MESSAGE("client: " << client->error_detail());
    CHECK(contains(client->error_detail(), "CERTIFICATE_VERIFY_FAILED"));
    CHECK(contains(client->error_detail(), "unable to get local issuer certificate"));
    End& srv = server.peer();
    CHECK(srv.error == kErrTransportHandshake);
    MESSAGE("server: " << srv.error_detail());
    CHECK(contains(srv.error_detail(), "TLS handshake"));
    CHECK(contains(srv.error_detail(), "ALERT"));  // the client told it why
    CHECK(srv.received.empty());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tls: a server that does not trust the client's root fails, and so does the client") {
  Loop loop;
  {
    TestCa ca, other("another root");
    auto server_spec = mesh_server_spec(ca);
    server_spec.trusted_roots = {other.cert};
    TlsServer server(loop, make_context(server_spec));
    auto client = dial_tls(loop, server.address(), make_context(mesh_client_spec(ca)));
    client->conn->write("hello");
    CHECK(run_until(
        loop,
        [&] { return client->error != 0 && server.peers.size() == 1 && server.peer().error != 0; },
        10s));
    End& srv = server.peer();
    CHECK(srv.error == kErrTransportHandshake);
    MESSAGE("server: " << srv.error_detail());
    CHECK(contains(srv.error_detail(),
                   "CERTIFICATE_VERIFY_FAILED (unable to get local issuer certificate)"));
    CHECK(srv.received.empty());
    // TLS 1.3 lets the client finish before the server has looked at its certificate: it
    // learns from the server's alert, before any data, and that still counts as the handshake.
    CHECK(client->error == kErrTransportHandshake);
    MESSAGE("client: " << client->error_detail());
    CHECK(contains(client->error_detail(), "ALERT"));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tls: a server without the SPIFFE ID the client expects is refused") {
  Loop loop;
  {
    TestCa ca;
    TlsServer server(
        loop, make_context(mesh_server_spec(ca, "spiffe://cluster.local/ns/default/sa/ratings")));
    auto client = dial_tls(loop, server.address(), make_context(mesh_client_spec(ca, kServerId)));
    CHECK(run_until(
        loop,
        [&] { return client->error != 0 && server.peers.size() == 1 && server.peer().error != 0; },
        10s));
    CHECK(client->error == kErrTransportHandshake);
    MESSAGE("client: " << client->error_detail());
    CHECK(contains(
        client->error_detail(),
        "peer SPIFFE ID spiffe://cluster.local/ns/default/sa/ratings is not the one expected (" +
            kServerId + ")"));
    CHECK(server.peer().error == kErrTransportHandshake);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tls: the server checks the client's SPIFFE ID too") {
  Loop loop;
  {
    TestCa ca;
    auto server_spec = mesh_server_spec(ca);
    server_spec.peer_spiffe_ids = {"spiffe://cluster.local/ns/default/sa/someone-else"};
    TlsServer server(loop, make_context(server_spec));
    auto client = dial_tls(loop, server.address(), make_context(mesh_client_spec(ca)));
    CHECK(run_until(
        loop, [&] { return server.peers.size() == 1 && server.peer().error != 0; }, 10s));
    CHECK(contains(server.peer().error_detail(),
                   "peer SPIFFE ID " + kClientId + " is not the one expected"));
    CHECK(run_until(
        loop, [&] { return client->error != 0; }, 10s));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tls: TLS 1.2 is refused when the minimum is 1.3, and works when allowed") {
  Loop loop;
  {
    TestCa ca;
    auto old_client = mesh_client_spec(ca);
    old_client.min_version = TlsVersion::Tls12;
    old_client.max_version = TlsVersion::Tls12;
    {
      TlsServer server(loop, make_context(mesh_server_spec(ca)));  // min 1.3
      auto client = dial_tls(loop, server.address(), make_context(old_client));
      CHECK(run_until(
          loop,
          [&] {
            return client->error != 0 && server.peers.size() == 1 && server.peer().error != 0;
          },
          10s));
      CHECK(client->error == kErrTransportHandshake);
      CHECK(server.peer().error == kErrTransportHandshake);
      MESSAGE("server: " << server.peer().error_detail());
      MESSAGE("client: " << client->error_detail());
      CHECK(contains(server.peer().error_detail(), "UNSUPPORTED_PROTOCOL"));
      CHECK(contains(client->error_detail(), "PROTOCOL_VERSION"));
    }
    {
      auto server_spec = mesh_server_spec(ca);
      server_spec.min_version = TlsVersion::Tls12;
      TlsServer server(loop, make_context(server_spec));
      auto client = dial_tls(loop, server.address(), make_context(old_client));
      client->conn->write("over 1.2");
      CHECK(run_until(
          loop, [&] { return server.peers.size() == 1 && server.peer().received == "over 1.2"; },
          10s));
      CHECK(client->tls()->version() == "TLSv1.2");
      CHECK(client->tls()->cipher() == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
      CHECK(server.peer().tls()->peer_spiffe_id() == kClientId);
      CHECK(client->tls()->peer_spiffe_id() == kServerId);
    }
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tls: plain text to a TLS server fails its handshake with a reason") {
  Loop loop;
  {
    TestCa ca;
    TlsServer server(loop, make_context(mesh_server_spec(ca)));
    End plain(loop::TcpConn::create(loop));
    REQUIRE(plain.conn->connect(server.address()).is_ok());
    plain.conn->read_start();
    plain.conn->write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(run_until(
        loop, [&] { return server.peers.size() == 1 && server.peer().error != 0; }, 10s));
    CHECK(server.peer().error == kErrTransportHandshake);
    MESSAGE("server: " << server.peer().error_detail());
    CHECK(contains(server.peer().error_detail(), "HTTP_REQUEST"));  // BoringSSL knows HTTP
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tls: a peer that hangs up during the handshake is a handshake error") {
  Loop loop;
  {
    TestCa ca;
    TlsServer server(loop, make_context(mesh_server_spec(ca)));
    server.on_accept = [](End& e) { e.conn.reset(); };  // accepts, then closes at once
    auto client = dial_tls(loop, server.address(), make_context(mesh_client_spec(ca)));
    CHECK(run_until(
        loop, [&] { return client->error != 0; }, 10s));
    CHECK(client->error == kErrTransportHandshake);
    MESSAGE("client: " << client->error_detail());
    CHECK(!client->error_detail().empty());
  }
  CHECK(loop.close().is_ok());
}

// 16 MiB from the client to the server, echoed back, with the high/low watermarks in charge:
// the writer waits for on_drained, the echoing server stops reading while its output is above
// the high watermark (and its TLS input waits, kept, until it reads again). Both streams are
// checksummed.
// `tls` false: the same over plain TCP, the baseline the TLS numbers compare with.
void echo_16mib(bool tls) {
  Loop loop;
  {
    TestCa ca;
    auto server_ctx = make_context(mesh_server_spec(ca));
    TlsServer server(loop, server_ctx);
    std::unique_ptr<End> client;
    int server_pauses = 0;
    server.on_accept = [&](End& e) {
      if (tls) e.conn->set_transport(TlsTransport::server(server_ctx));
      e.hash_only = true;
      e.on_data_hook = [&](const char* data, size_t len) {
        e.conn->write(data, len);
        if (e.conn->above_high_watermark()) {
          e.conn->read_stop();
          // The client reads nothing until the server's echo has backed up this far.
          if (++server_pauses == 1) client->conn->read_start();
        }
      };
      e.on_drained_hook = [&e] { e.conn->read_start(); };
      e.conn->read_start();
    };
    if (tls) {
      client = dial_tls(loop, server.address(), make_context(mesh_client_spec(ca)));
    } else {
      client = std::make_unique<End>(loop::TcpConn::create(loop));
      REQUIRE(client->conn->connect(server.address()).is_ok());
    }
    client->hash_only = true;
    client->conn->read_stop();  // the handshake goes on without it

    constexpr size_t kTotal = 16 * 1024 * 1024;
    constexpr size_t kChunk = 100'000;  // not a multiple of anything TLS or the buffers use
    std::vector<char> data(kTotal);
    for (size_t i = 0; i < kTotal; ++i)
      data[i] = static_cast<char>(i * 7 % 251);
    StreamHash sent_hash;
    sent_hash.add(data.data(), kTotal);
    size_t sent = 0;
    int stalls = 0;
    auto pump = [&] {
      while (sent < kTotal && !client->conn->above_high_watermark()) {
        size_t n = std::min(kChunk, kTotal - sent);
        client->conn->write(data.data() + sent, n);
        sent += n;
      }
      if (sent < kTotal) ++stalls;
    };
    client->on_drained_hook = pump;
    auto start = std::chrono::steady_clock::now();
    pump();
    CHECK(run_until(
        loop, [&] { return client->bytes == kTotal || client->error || client->drained > 100000; },
        60s));
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    REQUIRE(server.peers.size() == 1);
    End& srv = server.peer();
    CHECK(client->error == 0);
    CHECK(srv.error == 0);
    CHECK(srv.bytes == kTotal);
    CHECK(client->bytes == kTotal);
    CHECK(srv.hash.value() == sent_hash.value());
    CHECK(client->hash.value() == sent_hash.value());
    CHECK(stalls > 0);         // the client did wait for on_drained
    CHECK(server_pauses > 0);  // the echoing server stopped reading
    CHECK(srv.drained > 0);    // and went on after on_drained
    MESSAGE("16 MiB echoed over " << std::string(tls ? "TLS 1.3" : "plain TCP") << " in " << secs
                                  << " s: " << (2 * 16 / secs)
                                  << " MiB/s through both directions; client stalls " << stalls
                                  << ", server pauses " << server_pauses);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tls: 16 MiB each way under backpressure, checksummed") {
  echo_16mib(true);
}

TEST_CASE("tls: 16 MiB each way over plain TCP, the baseline") {
  echo_16mib(false);
}

TEST_CASE("tls: half-close: close_notify then FIN each way, data still flows back") {
  Loop loop;
  {
    TestCa ca;
    TlsServer server(loop, make_context(mesh_server_spec(ca)));
    auto client = dial_tls(loop, server.address(), make_context(mesh_client_spec(ca)));
    client->conn->write("request");
    client->conn->shutdown();  // before the handshake is even done: waits for it
    CHECK(run_until(
        loop, [&] { return server.peers.size() == 1 && server.peer().eofs == 1; }, 10s));
    End& srv = server.peer();
    CHECK(srv.received == "request");
    CHECK(client->flushed == 1);
    CHECK(client->eofs == 0);
    // The server's side is still open: it answers, then closes it too.
    srv.conn->write("response");
    srv.conn->shutdown();
    CHECK(run_until(
        loop, [&] { return client->eofs == 1 && srv.flushed == 1; }, 10s));
    CHECK(client->received == "response");
    CHECK(client->error == 0);
    CHECK(srv.error == 0);
    CHECK(srv.eofs == 1);  // close_notify and the FIN after it: one on_eof
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tls: the second connection resumes the first one's session") {
  Loop loop;
  {
    TestCa ca;
    TlsServer server(loop, make_context(mesh_server_spec(ca)));
    auto client_ctx = make_context(mesh_client_spec(ca));
    TlsClientOptions opts{.server_name = "reviews", .session_key = "127.0.0.1:1234/reviews"};
    auto first = dial_tls(loop, server.address(), client_ctx, opts);
    first->conn->write("one");
    CHECK(run_until(
        loop, [&] { return server.peers.size() == 1 && server.peer(0).received == "one"; }, 10s));
    server.peer(0).conn->write("ack");  // the tickets came before it: the client has them now
    CHECK(run_until(
        loop, [&] { return first->received == "ack"; }, 10s));
    CHECK_FALSE(first->tls()->resumed());
    CHECK(client_ctx->cached_sessions_for_test() == 1);
    first.reset();

    auto second = dial_tls(loop, server.address(), client_ctx, opts);
    second->conn->write("two");
    CHECK(run_until(
        loop, [&] { return server.peers.size() == 2 && server.peer(1).received == "two"; }, 10s));
    CHECK(second->connected == 1);
    CHECK(second->tls()->resumed());
    CHECK(server.peer(1).tls()->resumed());
    // The identities come from the resumed session.
    CHECK(second->tls()->peer_spiffe_id() == kServerId);
    CHECK(server.peer(1).tls()->peer_spiffe_id() == kClientId);

    // Another upstream key has no session: a full handshake.
    auto third = dial_tls(loop, server.address(), client_ctx,
                          {.server_name = "reviews", .session_key = "elsewhere"});
    third->conn->write("three");
    CHECK(run_until(
        loop, [&] { return server.peers.size() == 3 && server.peer(2).received == "three"; }, 10s));
    CHECK_FALSE(third->tls()->resumed());

    // Another server context (a new ticket key, as after a rotation): the offer is declined.
    TlsServer rotated(loop, make_context(mesh_server_spec(ca)));
    auto fourth = dial_tls(loop, rotated.address(), client_ctx, opts);
    fourth->conn->write("four");
    CHECK(run_until(
        loop, [&] { return rotated.peers.size() == 1 && rotated.peer().received == "four"; }, 10s));
    CHECK_FALSE(fourth->tls()->resumed());
    CHECK(fourth->tls()->peer_spiffe_id() == kServerId);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tls: the server picks its certificate by SNI: exact, wildcard, default") {
  Loop loop;
  {
    TestCa ca;
    TlsContextSpec server_spec;
    server_spec.role = TlsContextSpec::Role::Server;
    TlsIdentity fallback = ca.issue("spiffe://test/default", {"default.test"});
    TlsIdentity api = ca.issue("spiffe://test/api", {"api.example.com"});
    api.server_names = {"API.example.com"};
    TlsIdentity wild = ca.issue("spiffe://test/wildcard", {"*.example.com"});
    wild.server_names = {"*.example.com"};
    server_spec.identities = {fallback, api, wild};
    TlsServer server(loop, make_context(server_spec));

    struct Case {
      std::string sni;
      std::string want;
    };
    std::vector<Case> cases = {
        {"api.example.com", "spiffe://test/api"},
        {"Api.Example.COM", "spiffe://test/api"},
        {"web.example.com", "spiffe://test/wildcard"},
        {"a.b.example.com", "spiffe://test/default"},  // one label only
        {"example.com", "spiffe://test/default"},
        {"other.test", "spiffe://test/default"},
        {"", "spiffe://test/default"},
    };
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      CAPTURE(c.sni);
      TlsContextSpec client_spec;
      client_spec.role = TlsContextSpec::Role::Client;
      client_spec.trusted_roots = {ca.cert};
      auto client = dial_tls(loop, server.address(), make_context(client_spec),
                             {.server_name = c.sni, .session_key = ""});
      CHECK(run_until(
          loop, [&] { return client->connected == 1 || client->error != 0; }, 10s));
      CHECK(client->error == 0);
      if (client->connected) CHECK(client->tls()->peer_spiffe_id() == c.want);
      CHECK(run_until(
          loop, [&] { return server.peers.size() == i + 1 && server.peer(i).tls()->ready(); },
          10s));
      std::string lower = c.sni;
      for (char& ch : lower)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      CHECK(server.peer(i).tls()->server_name() == lower);
      CHECK_FALSE(server.peer(i).tls()->peer_presented_certificate());
    }

    // The SNI checked against the chosen certificate's DNS names (gateway origination).
    TlsContextSpec strict;
    strict.role = TlsContextSpec::Role::Client;
    strict.trusted_roots = {ca.cert};
    strict.server_name = "shop.example.com";
    strict.verify_server_name = true;
    auto good = dial_tls(loop, server.address(), make_context(strict));
    CHECK(run_until(
        loop, [&] { return good->connected == 1 || good->error != 0; }, 10s));
    CHECK(good->error == 0);
    auto bad = dial_tls(loop, server.address(), make_context(strict),
                        {.server_name = "other.test", .session_key = ""});
    CHECK(run_until(
        loop, [&] { return bad->error != 0; }, 10s));
    MESSAGE("name mismatch: " << bad->error_detail());
    CHECK(contains(bad->error_detail(), "Hostname mismatch"));
  }
  CHECK(loop.close().is_ok());
}

// PERMISSIVE: one listener, plain and TLS clients; it reads the first bytes as plain text,
// and turns TLS on with them when they are a ClientHello.
TEST_CASE("tls: a listener that peeks at the first bytes, then starts TLS or stays plain") {
  Loop loop;
  {
    TestCa ca;
    auto ctx = make_context(mesh_server_spec(ca));
    TlsServer server(loop, ctx);
    std::vector<std::string> verdicts;
    server.on_accept = [&](End& e) {
      // Peek: plain reads until sniff_tls() decides.
      auto peeked = std::make_shared<std::string>();
      e.on_data_hook = [&, &e = e, peeked](const char* data, size_t len) {
        if (e.tls()) return;  // already TLS: plaintext from now on
        peeked->append(data, len);
        Sniffed s = sniff_tls(*peeked);
        if (s == Sniffed::NeedMore) return;
        verdicts.push_back(s == Sniffed::Tls ? "tls" : "plain");
        if (s == Sniffed::Tls) {
          e.received.clear();
          e.conn->set_transport(TlsTransport::server(ctx), *peeked);
        } else {
          e.conn->write("plain hello");
        }
      };
      e.conn->read_start();
    };

    auto tls_client = dial_tls(loop, server.address(), make_context(mesh_client_spec(ca)));
    tls_client->conn->write("secret");
    CHECK(run_until(
        loop, [&] { return server.peers.size() == 1 && server.peer(0).received == "secret"; },
        10s));
    CHECK(tls_client->connected == 1);
    CHECK(server.peer(0).tls()->peer_spiffe_id() == kClientId);
    server.peer(0).conn->write("secret reply");
    CHECK(run_until(
        loop, [&] { return tls_client->received == "secret reply"; }, 10s));

    End plain(loop::TcpConn::create(loop));
    REQUIRE(plain.conn->connect(server.address()).is_ok());
    plain.conn->read_start();
    plain.conn->write("GET / HTTP/1.1\r\n\r\n");
    CHECK(run_until(
        loop, [&] { return plain.received == "plain hello"; }, 10s));
    CHECK(server.peer(1).tls() == nullptr);
    CHECK(verdicts == std::vector<std::string>{"tls", "plain"});
  }
  CHECK(loop.close().is_ok());
}

// The transport is bytes in, bytes out: two of them talk through an in-memory TransportIo,
// no socket. Also what the sniffer sees of a real ClientHello.
class MemoryIo : public loop::TransportIo {
 public:
  void send_to_peer(const char* data, size_t len) override { out.append(data, len); }
  bool wants_data() const override { return true; }
  bool deliver(const char* data, size_t len) override {
    in.append(data, len);
    return true;
  }
  bool on_transport_ready() override {
    ready = true;
    return true;
  }
  void on_transport_eof() override { eof = true; }
  std::string out, in;
  bool ready = false, eof = false;
};

TEST_CASE("tls: transport without a socket; sniff_tls on a real ClientHello") {
  TestCa ca;
  auto client = TlsTransport::client(make_context(mesh_client_spec(ca)));
  auto server = TlsTransport::server(make_context(mesh_server_spec(ca)));
  MemoryIo cio, sio;
  client->attach(&cio);
  server->attach(&sio);
  REQUIRE(client->start() == 0);
  REQUIRE(server->start() == 0);
  std::string hello = cio.out;
  REQUIRE(hello.size() > 100);
  CHECK(sniff_tls(hello) == Sniffed::Tls);
  for (size_t n = 0; n < kSniffBytes; ++n)
    CHECK(sniff_tls(std::string_view(hello).substr(0, n)) == Sniffed::NeedMore);

  iovec part{const_cast<char*>("early"), 5};
  CHECK(client->write(&part, 1) == 0);
  CHECK(client->held() == 5);
  // Ping-pong the flights until both ends are ready and the early bytes arrived.
  for (int round = 0; round < 10 && sio.in != "early"; ++round) {
    std::string to_server = std::exchange(cio.out, {});
    REQUIRE(server->on_read(to_server.data(), to_server.size()) == 0);
    std::string to_client = std::exchange(sio.out, {});
    REQUIRE(client->on_read(to_client.data(), to_client.size()) == 0);
  }
  CHECK(cio.ready);
  CHECK(sio.ready);
  CHECK(sio.in == "early");
  CHECK(client->held() == 0);
  CHECK(server->peer_spiffe_id() == kClientId);
  client->shutdown();
  std::string close_notify = std::exchange(cio.out, {});
  CHECK(server->on_read(close_notify.data(), close_notify.size()) == 0);
  CHECK(sio.eof);
}

TEST_CASE("tls: sniff_tls on plain text and near misses") {
  CHECK(sniff_tls("") == Sniffed::NeedMore);
  CHECK(sniff_tls("GET / HTTP/1.1\r\n") == Sniffed::Plain);
  CHECK(sniff_tls("G") == Sniffed::Plain);
  CHECK(sniff_tls("PRI * HTTP/2.0") == Sniffed::Plain);
  CHECK(sniff_tls(std::string_view("\x16", 1)) == Sniffed::NeedMore);
  CHECK(sniff_tls(std::string_view("\x16\x03\x01", 3)) == Sniffed::NeedMore);
  CHECK(sniff_tls(std::string_view("\x16\x03\x09", 3)) == Sniffed::Plain);  // no such version
  CHECK(sniff_tls(std::string_view("\x16\x02\x00", 3)) == Sniffed::Plain);  // SSL 2
  CHECK(sniff_tls(std::string_view("\x16\x03\x01\x00\x00", 5)) == Sniffed::Plain);  // empty record
  CHECK(sniff_tls(std::string_view("\x16\x03\x01\xff\xff", 5)) == Sniffed::Plain);  // too long
  CHECK(sniff_tls(std::string_view("\x16\x03\x01\x02\x00\x02", 6)) ==
        Sniffed::Plain);  // ServerHello
  CHECK(sniff_tls(std::string_view("\x16\x03\x01\x02\x00\x01", 6)) == Sniffed::Tls);
  CHECK(sniff_tls(std::string_view("\x15\x03\x01", 3)) == Sniffed::Plain);  // an alert
}

// Not a benchmark, a measurement for the record (MESSAGE): full and resumed mTLS handshakes
// over loopback, one after the other, both ends on this thread.
TEST_CASE("tls: handshake cost, full and resumed") {
  Loop loop;
  {
    TestCa ca;
    TlsServer server(loop, make_context(mesh_server_spec(ca)));
    auto client_ctx = make_context(mesh_client_spec(ca));
    auto run = [&](int n, bool resume) {
      auto start = std::chrono::steady_clock::now();
      int resumed = 0;
      for (int i = 0; i < n; ++i) {
        std::string key = resume ? "same" : "key-" + std::to_string(i);
        auto c =
            dial_tls(loop, server.address(), client_ctx, {.server_name = "", .session_key = key});
        c->conn->write("x");
        size_t want = server.peers.size() + 1;
        REQUIRE(run_until(
            loop, [&] { return server.peers.size() == want && server.peers.back()->bytes == 1; },
            10s));
        server.peers.back()->conn->write("y");  // carries the tickets to the client first
        REQUIRE(run_until(
            loop, [&] { return c->bytes == 1; }, 10s));
        resumed += c->tls()->resumed() ? 1 : 0;
        server.peers.clear();
      }
      double us =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
              .count();
      return std::pair<double, int>(us / n, resumed);
    };
    run(1, true);  // makes the session "same" resumes
    auto [full_us, full_resumed] = run(50, false);
    auto [res_us, res_resumed] = run(50, true);
    CHECK(full_resumed == 0);
    CHECK(res_resumed == 50);
    MESSAGE("mTLS 1.3 connection + handshake + 1 round trip, both ends on one thread: full "
            << full_us << " us, resumed " << res_us << " us");
  }
  CHECK(loop.close().is_ok());
}

}  // namespace
}  // namespace meshbox::tls::test
