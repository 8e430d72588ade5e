// TlsTransport: TLS on a loop::TcpConn (core/loop/transport.h). It drives a BoringSSL SSL over
// a BIO of its own: reads take ciphertext straight from the bytes the socket just read, and
// writes hand each record straight to the connection's socket path, so the only copies are
// BoringSSL's own (into its record buffer, and the plaintext out of it).
//
//   auto conn = loop::TcpConn::create(loop);
//   conn->set_transport(TlsTransport::client(ctx, {.server_name = "reviews", .session_key = key}));
//   conn->connect(addr);   // on_connected once the handshake has finished
//
// A server does `conn->set_transport(TlsTransport::server(ctx))` on an accepted connection,
// or, after peeking at the first bytes (sniff.h), passes those bytes along. After the
// handshake (ready()), the accessors below say whom the connection talks to and how. A failure
// reaches on_error as loop::kErrTransportHandshake or kErrTransportProtocol; error_detail()
// says why ("certificate verify failed: unable to get local issuer certificate").
//
// Owned by its TcpConn; loop thread only.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>

#include "core/base/buffer.h"
#include "core/loop/transport.h"
#include "core/tls/tls_context.h"

namespace meshbox::tls {

struct TlsClientOptions {
  /// The SNI to send; "" = the context's server_name.
  std::string server_name;
  /// Where this connection's session is cached and looked up: name the upstream (address
  /// and SNI) so that a session only ever goes back where it came from. "" = the SNI;
  /// both "" = no resumption.
  std::string session_key;
};

class TlsTransport final : public loop::Transport {
 public:
  static std::unique_ptr<TlsTransport> server(TlsContextConstPtr ctx);
  static std::unique_ptr<TlsTransport> client(TlsContextConstPtr ctx,
                                              TlsClientOptions options = {});
  ~TlsTransport() override;

  /// `t` if it is a TlsTransport (TcpConn::transport()), else null.
  static TlsTransport* of(loop::Transport* t) { return dynamic_cast<TlsTransport*>(t); }
  /// The TlsTransport of `ssl` (from BoringSSL callbacks).
  static TlsTransport* from(const SSL* ssl);

  // After the handshake (ready()):
  /// The peer certificate's SPIFFE ID; "" without a certificate or without a SPIFFE ID.
  const std::string& peer_spiffe_id() const { return peer_id_; }
  bool peer_presented_certificate() const { return peer_cert_; }
  /// SHA-256 of the peer certificate's DER, lower-case hex (Envoy's XFCC Hash=); "" without
  /// a certificate.
  std::string peer_certificate_sha256() const;
  std::string_view version() const;  // "TLSv1.3"
  std::string_view cipher() const;   // "TLS_AES_128_GCM_SHA256"
  std::string_view alpn() const;     // "" when none was agreed
  /// Client: the SNI sent. Server: the SNI received ("" = none).
  std::string_view server_name() const;
  /// The handshake resumed an earlier session (no certificates exchanged).
  bool resumed() const;
  bool is_client() const { return client_; }
  const std::string& session_key() const { return session_key_; }

  // loop::Transport
  void attach(loop::TransportIo* io) override { io_ = io; }
  int start() override;
  int on_read(const char* data, size_t len) override;
  void add_input(const char* data, size_t len) override { stash_.append(data, len); }
  int on_socket_eof() override;
  int write(const iovec* parts, size_t count) override;
  void shutdown() override;
  bool ready() const override { return ready_; }
  bool has_input() const override {
    return eof_pending_ || !stash_.empty() || SSL_pending(ssl_.get()) > 0;
  }
  size_t held() const override { return held_.size(); }
  const std::string& error_detail() const override { return error_; }

  /// From the verify callback: why the peer's certificate was refused beyond what
  /// BoringSSL says (its SPIFFE ID).
  void note_verify_failure(std::string why) { verify_failure_ = std::move(why); }

 private:
  TlsTransport(TlsContextConstPtr ctx, bool client);
  int process();
  int handshake_done();
  int fail(int code, std::string_view what);
  bool write_plain(const char* data, size_t len);
  static const BIO_METHOD* bio_method();
  static int bio_read(BIO* bio, char* out, int len);
  static int bio_write(BIO* bio, const char* in, int len);
  static long bio_ctrl(BIO* bio, int cmd, long num, void* ptr);

  TlsContextConstPtr ctx_;
  bssl::UniquePtr<SSL> ssl_;
  loop::TransportIo* io_ = nullptr;
  // Input: `stash_` (kept from before) is read first, then the socket's bytes of the
  // current on_read() (`in_`, not copied); what is left of `in_` then goes to the stash.
  Buffer stash_;
  const char* in_ = nullptr;
  size_t in_len_ = 0;
  Buffer held_;  // user bytes written before the handshake finished
  std::string error_;
  std::string verify_failure_;
  std::string peer_id_;
  std::string session_key_;
  std::string client_sni_;
  bool client_;
  bool ready_ = false;
  bool peer_cert_ = false;
  bool app_data_seen_ = false;
  bool eof_pending_ = false;  // close_notify read while the user was not reading
  bool shut_ = false;         // close_notify sent
  int failed_ = 0;            // the kErrTransport* code once failed
};

}  // namespace meshbox::tls
