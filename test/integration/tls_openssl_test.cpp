// core/tls against another TLS implementation: the real `openssl` CLI (OpenSSL 3), run as a
// child process. `openssl s_client` talks mutual TLS 1.3 to a TcpConn TLS server, and a
// TcpConn TLS client talks to `openssl s_server` (client certificate required, TLS 1.2 and
// 1.3, session resumption across two connections). Certificates come from a test CA made with
// core/tls/certificate_builder. The loop runs on this thread; the child's pipes are read
// without blocking between loop turns; every wait has a deadline.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "test/support/files.h"
#include "test/support/process.h"
#include "test/unit/core/tls/tls_fixture.h"

namespace meshbox::tls::test {
namespace {

using loop::Loop;
using loop::run_until;
using meshbox::test::Process;
using meshbox::test::SpawnOptions;
using meshbox::test::TempDir;

void write_text(const std::string& path, std::string_view text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  REQUIRE(f.good());
}

// Reads what is available on a non-blocking pipe.
void drain_pipe(int fd, std::string& into) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return;
    into.append(buf, static_cast<size_t>(n));
  }
}

void set_nonblocking(int fd) {
  REQUIRE(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
}

// The CA, a server and a client certificate, as PEM files for openssl.
struct Pki {
  Pki() {
    server = ca.issue(kServerId, {"reviews.test"});
    client = ca.issue(kClientId);
    write_text(dir.file("ca.pem"), ca.cert.to_pem());
    write_text(dir.file("server.pem"), server.chain[0].to_pem());
    write_text(dir.file("server.key"), server.key.to_pem().reveal());
    write_text(dir.file("client.pem"), client.chain[0].to_pem());
    write_text(dir.file("client.key"), client.key.to_pem().reveal());
  }
  std::string file(const std::string& name) const { return dir.file(name); }

  TempDir dir;
  TestCa ca;
  TlsIdentity server{{}, new_key(), {}};
  TlsIdentity client{{}, new_key(), {}};
};

TEST_CASE("openssl s_client speaks mutual TLS 1.3 to a TcpConn TLS server") {
  Pki pki;
  Loop loop;
  {
    TlsContextSpec spec;
    spec.role = TlsContextSpec::Role::Server;
    spec.identities = {pki.server};
    spec.trusted_roots = {pki.ca.cert};
    spec.client_certs = ClientCertMode::Require;
    spec.peer_spiffe_ids = {kClientId};
    spec.min_version = TlsVersion::Tls13;
    TlsServer server(loop, make_context(spec));
    server.on_accept = [&](End& e) {
      e.conn->set_transport(TlsTransport::server(make_context(spec)));
      e.on_data_hook = [&e](const char*, size_t) {
        if (e.received.find('\n') != std::string::npos && e.bytes == e.received.size())
          e.conn->write("hello from meshbox\n");
      };
      e.conn->read_start();
    };

    SpawnOptions opts;
    opts.argv = {"openssl",     "s_client",
                 "-connect",    server.address().to_string(),
                 "-servername", "reviews.test",
                 "-CAfile",     pki.file("ca.pem"),
                 "-cert",       pki.file("client.pem"),
                 "-key",        pki.file("client.key"),
                 "-tls1_3",     "-verify_return_error",
                 "-brief"};
    opts.pipe_stdin = opts.pipe_stdout = true;
    opts.stderr_path = pki.file("s_client.err");
    Process client(opts);
    set_nonblocking(client.stdout_fd());
    std::string out;
    std::string_view hello = "hello from openssl\n";
    REQUIRE(::write(client.stdin_fd(), hello.data(), hello.size()) ==
            static_cast<ssize_t>(hello.size()));
    bool ok = run_until(
        loop,
        [&] {
          drain_pipe(client.stdout_fd(), out);
          return out.find("hello from meshbox") != std::string::npos;
        },
        20s);
    CHECK_MESSAGE(ok,
                  "s_client stdout: " << out << "\nstderr: "
                                      << meshbox::test::read_file_tail(pki.file("s_client.err")));
    REQUIRE(server.peers.size() == 1);
    End& srv = server.peer();
    CHECK(srv.received == hello);
    CHECK(srv.error == 0);
    TlsTransport* t = srv.tls();
    CHECK(t->peer_spiffe_id() == kClientId);
    CHECK(t->version() == "TLSv1.3");
    CHECK(t->server_name() == "reviews.test");
    // EOF on its stdin: s_client sends close_notify and leaves.
    client.close_stdin();
    CHECK(run_until(
        loop, [&] { return srv.eofs == 1 || srv.error != 0; }, 20s));
    CHECK(srv.error == 0);
    auto status = client.wait(meshbox::test::Deadline(20s));
    REQUIRE(status.has_value());
    CHECK(status->ok());
    std::string err = meshbox::test::read_file_tail(pki.file("s_client.err"));
    CHECK_MESSAGE(err.find("Verification: OK") != std::string::npos, err);
    CHECK_MESSAGE(err.find("Protocol version: TLSv1.3") != std::string::npos, err);
  }
  CHECK(loop.close().is_ok());
}

// `openssl s_server -rev` sends every line back reversed; -Verify 1 requires a client
// certificate, -verify_return_error refuses one it cannot verify.
struct SServer {
  SServer(const Pki& pki, std::vector<std::string> extra, int accepts) {
    SpawnOptions opts;
    opts.argv = {"openssl",
                 "s_server",
                 "-accept",
                 "127.0.0.1:0",
                 "-cert",
                 pki.file("server.pem"),
                 "-key",
                 pki.file("server.key"),
                 "-CAfile",
                 pki.file("ca.pem"),
                 "-Verify",
                 "1",
                 "-verify_return_error",
                 "-rev",
                 "-naccept",
                 std::to_string(accepts)};
    opts.argv.insert(opts.argv.end(), extra.begin(), extra.end());
    opts.pipe_stdout = true;
    opts.stderr_path = pki.file("s_server.err");
    process = Process(opts);
    set_nonblocking(process.stdout_fd());
    // "ACCEPT 127.0.0.1:PORT" on stdout once it listens.
    const std::string prefix = "ACCEPT 127.0.0.1:";
    meshbox::test::Deadline deadline(20s);
    size_t at, end;
    while ((at = out.find(prefix)) == std::string::npos ||
           (end = out.find('\n', at)) == std::string::npos) {
      REQUIRE_MESSAGE(!deadline.expired(), "s_server never said where it listens: " << out);
      meshbox::test::poll_pause();
      drain_pipe(process.stdout_fd(), out);
    }
    address = loopback(static_cast<uint16_t>(std::stoi(out.substr(at + prefix.size(), end))));
  }
  Process process;
  std::string out;
  loop::Address address;
};

TEST_CASE("a TcpConn TLS client speaks mutual TLS to openssl s_server, 1.3 and 1.2, and resumes") {
  Pki pki;
  Loop loop;
  {
    TlsContextSpec spec;
    spec.role = TlsContextSpec::Role::Client;
    spec.identities = {pki.client};
    spec.trusted_roots = {pki.ca.cert};
    spec.peer_spiffe_ids = {kServerId};
    spec.server_name = "reviews.test";
    spec.verify_server_name = true;
    auto ctx = make_context(spec);

    SUBCASE("TLS 1.3, the second connection resumed") {
      SServer s_server(pki, {"-tls1_3"}, 2);
      for (int i = 0; i < 2; ++i) {
        CAPTURE(i);
        auto client =
            dial_tls(loop, s_server.address, ctx, {.server_name = "", .session_key = "s_server"});
        client->conn->write("hello meshbox\n");
        bool ok = run_until(
            loop,
            [&] {
              return client->received.find("xobhsem olleh\n") != std::string::npos || client->error;
            },
            20s);
        CHECK_MESSAGE(ok, "s_server: " << meshbox::test::read_file_tail(pki.file("s_server.err")));
        CHECK_MESSAGE(client->error == 0, client->error_detail());
        REQUIRE(client->tls() != nullptr);
        CHECK(client->tls()->peer_spiffe_id() == kServerId);
        CHECK(client->tls()->version() == "TLSv1.3");
        CHECK(client->tls()->resumed() == (i == 1));
        client->conn->shutdown();
        CHECK(run_until(
            loop, [&] { return client->eofs > 0 || client->error != 0; }, 20s));
      }
      auto status = s_server.process.wait(meshbox::test::Deadline(20s));
      REQUIRE(status.has_value());
      CHECK(status->ok());
    }
    SUBCASE("TLS 1.2") {
      SServer s_server(pki, {"-tls1_2"}, 1);
      auto client = dial_tls(loop, s_server.address, ctx);
      client->conn->write("over one point two\n");
      CHECK(run_until(
          loop,
          [&] {
            return client->received.find("owt tniop eno revo\n") != std::string::npos ||
                   client->error;
          },
          20s));
      CHECK_MESSAGE(client->error == 0, client->error_detail());
      CHECK(client->tls()->version() == "TLSv1.2");
      CHECK(client->tls()->cipher() == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
      CHECK(client->tls()->peer_spiffe_id() == kServerId);
    }
    SUBCASE("s_server refuses a client whose certificate it cannot verify") {
      TestCa other("another root");
      TlsContextSpec bad = spec;
      bad.identities = {other.issue(kClientId)};
      SServer s_server(pki, {"-tls1_3"}, 1);
      auto client = dial_tls(loop, s_server.address, make_context(bad));
      client->conn->write("let me in\n");
      CHECK(run_until(
          loop, [&] { return client->error != 0; }, 20s));
      CHECK(client->error == loop::kErrTransportHandshake);
      MESSAGE("client: " << client->error_detail());
      CHECK(client->error_detail().find("ALERT") != std::string::npos);
    }
  }
  CHECK(loop.close().is_ok());
}

}  // namespace
}  // namespace meshbox::tls::test
