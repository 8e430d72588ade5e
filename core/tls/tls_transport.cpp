#include "core/tls/tls_transport.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/base/assert.h"
#include "core/tls/handshake_stats.h"
#include "core/tls/ssl_error.h"

namespace meshbox::tls {

namespace {

// Plaintext out of SSL_read collects here before on_data: up to the loop's read size, so a
// socket read of records reaches the user as one call, as plain TCP does.
constexpr size_t kReadScratch = 64 * 1024;
// Small pieces of one writev are gathered into records of up to this size (one TLS record),
// so a response head and its body do not cost a record and a system call each.
constexpr size_t kGather = 16 * 1024;
// Pieces at least this large go to SSL_write where they are (after topping up the gather).
constexpr size_t kDirectWrite = 4 * 1024;

// One of each per thread, not per connection (64 KiB × 10,000 connections would add up).
// Safe: a connection fills the read scratch and hands it to on_data before returning to the
// loop, and no socket read (the only way in) can run inside on_data; the gather buffer is
// sealed into records before write() returns, and nothing in between calls back.
thread_local char tls_read_scratch[kReadScratch];
thread_local char tls_gather[kGather];

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_ip_literal(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

// --- The BIO: ciphertext in from the current socket read (or the stash), out to the
// connection's socket path. Never blocks, never fails a write.

const BIO_METHOD* TlsTransport::bio_method() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "meshbox TcpConn");
    MB_CHECK(m != nullptr);
    BIO_meth_set_read(m, &TlsTransport::bio_read);
    BIO_meth_set_write(m, &TlsTransport::bio_write);
    BIO_meth_set_ctrl(m, &TlsTransport::bio_ctrl);
    return m;
  }();
  return method;
}

int TlsTransport::bio_read(BIO* bio, char* out, int len) {
  auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  size_t want = static_cast<size_t>(len), got = 0;
  if (!self->stash_.empty()) {
    got = std::min(want, self->stash_.size());
    self->stash_.copy_out(out, got);
    self->stash_.drain(got);
  }
  if (got < want && self->in_len_ > 0) {
    size_t n = std::min(want - got, self->in_len_);
    std::memcpy(out + got, self->in_, n);
    self->in_ += n;
    self->in_len_ -= n;
    got += n;
  }
  if (got == 0) {
    BIO_set_retry_read(bio);
    return -1;
  }
  return static_cast<int>(got);
}

int TlsTransport::bio_write(BIO* bio, const char* in, int len) {
  auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (self->io_ && len > 0) self->io_->send_to_peer(in, static_cast<size_t>(len));
  return len;
}

long TlsTransport::bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // records already went to the socket path
}

// --- Construction.

TlsTransport::TlsTransport(TlsContextConstPtr ctx, bool client)
    : ctx_(std::move(ctx)), client_(client) {
  ssl_.reset(SSL_new(ctx_->native()));
  MB_CHECK(ssl_ != nullptr);  // allocation only
  SSL_set_app_data(ssl_.get(), this);
  BIO* bio = BIO_new(bio_method());
  MB_CHECK(bio != nullptr);
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_.get(), bio, bio);  // one reference, for both directions
  if (client) {
    SSL_set_connect_state(ssl_.get());
  } else {
    SSL_set_accept_state(ssl_.get());
  }
}

TlsTransport::~TlsTransport() = default;

std::unique_ptr<TlsTransport> TlsTransport::server(TlsContextConstPtr ctx) {
  MB_ASSERT(ctx && ctx->is_server());
  return std::unique_ptr<TlsTransport>(new TlsTransport(std::move(ctx), false));
}

std::unique_ptr<TlsTransport> TlsTransport::client(TlsContextConstPtr ctx,
                                                   TlsClientOptions options) {
  MB_ASSERT(ctx && !ctx->is_server());
  std::unique_ptr<TlsTransport> t(new TlsTransport(ctx, true));
  SSL* ssl = t->ssl_.get();
  t->client_sni_ =
      options.server_name.empty() ? ctx->server_name() : lowercase(options.server_name);
  const std::string& name = t->client_sni_;
  bool ip = !name.empty() && is_ip_literal(name);
  if (!name.empty() && !ip) SSL_set_tlsext_host_name(ssl, name.c_str());  // RFC 6066: no IPs
  if (ctx->verify_server_name() && !name.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, name.data(), name.size());
    }
  }
  t->session_key_ = options.session_key.empty() ? name : std::move(options.session_key);
  if (ctx->session_resumption()) {
    if (auto session = ctx->find_session(t->session_key_)) SSL_set_session(ssl, session.get());
  } else {
    t->session_key_.clear();
  }
  return t;
}

TlsTransport* TlsTransport::from(const SSL* ssl) {
  return ssl ? static_cast<TlsTransport*>(SSL_get_app_data(ssl)) : nullptr;
}

// --- After the handshake.

std::string_view TlsTransport::version() const {
  return SSL_get_version(ssl_.get());
}

std::string_view TlsTransport::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl_.get());
  return c ? SSL_CIPHER_standard_name(c) : "";
}

std::string_view TlsTransport::alpn() const {
  const uint8_t* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &p, &len);
  return {reinterpret_cast<const char*>(p), len};
}

std::string_view TlsTransport::server_name() const {
  if (client_) return client_sni_;
  const char* sni = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name);
  return sni ? sni : "";
}

bool TlsTransport::resumed() const {
  return SSL_session_reused(ssl_.get()) == 1;
}

// --- loop::Transport.

int TlsTransport::start() {
  // The client's hello goes out now; a server waits for it.
  return client_ ? process() : 0;
}

int TlsTransport::on_read(const char* data, size_t len) {
  in_ = data;
  in_len_ = len;
  int rc = process();
  // What BoringSSL did not read now (the user stopped reading) must outlive the socket's
  // read buffer.
  if (in_len_ > 0 && !failed_) stash_.append(in_, in_len_);
  in_ = nullptr;
  in_len_ = 0;
  return rc;
}

int TlsTransport::process() {
  if (failed_) return failed_;
  SSL* ssl = ssl_.get();
  if (!ready_) {
    int r = SSL_do_handshake(ssl);
    if (r != 1) {
      if (SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ) return 0;
      count_handshake(client_, false, false);
      return fail(loop::kErrTransportHandshake, "TLS handshake");
    }
    count_handshake(client_, true, SSL_session_reused(ssl) == 1);
    if (int rc = handshake_done(); rc != 0) return rc;
    if (!io_->on_transport_ready()) return 0;  // closed from on_connected
  }
  char* buf = tls_read_scratch;
  size_t n = 0;  // plaintext collected in buf
  for (;;) {
    // Collect only while the user reads; once started, a batch is always delivered.
    if (n == 0) {
      if (!io_->wants_data()) break;
      if (eof_pending_) {
        eof_pending_ = false;
        io_->on_transport_eof();
        break;
      }
    }
    int r = SSL_read(ssl, buf + n, static_cast<int>(kReadScratch - n));
    if (r > 0) {
      app_data_seen_ = true;
      n += static_cast<size_t>(r);
      if (n == kReadScratch) {
        n = 0;
        io_->deliver(buf, kReadScratch);
      }
      continue;
    }
    int e = SSL_get_error(ssl, r);
    if (n > 0) {
      io_->deliver(buf, n);
      n = 0;
    }
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      eof_pending_ = true;  // delivered above on the next turn, if the user still reads
      continue;
    }
    // A client whose certificate the server refuses learns it only now: TLS 1.3 lets the
    // client finish first. Before any data has come, that is still the handshake failing.
    bool handshake = client_ && !app_data_seen_;
    return fail(handshake ? loop::kErrTransportHandshake : loop::kErrTransportProtocol,
                handshake ? "TLS handshake (refused by the server)" : "TLS");
  }
  return 0;
}

std::string TlsTransport::peer_certificate_sha256() const {
  bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(ssl_.get()));
  if (!peer) return "";
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!X509_digest(peer.get(), EVP_sha256(), md, &len)) {
    clear_ssl_errors();
    return "";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

int TlsTransport::handshake_done() {
  ready_ = true;
  if (X509* peer = SSL_get_peer_certificate(ssl_.get())) {
    peer_cert_ = true;
    Certificate cert{bssl::UniquePtr<X509>(peer)};
    if (auto id = cert.spiffe_id()) peer_id_ = std::move(*id);
  }
  // What the user wrote meanwhile goes first.
  iovec parts[16];
  while (!held_.empty()) {
    size_t k = held_.peek(parts, 16);
    size_t bytes = 0;
    for (size_t i = 0; i < k; ++i)
      bytes += parts[i].iov_len;
    if (int rc = write(parts, k); rc != 0) return rc;
    held_.drain(bytes);
  }
  return 0;
}

int TlsTransport::on_socket_eof() {
  if (failed_) return failed_;
  if (!ready_) {
    failed_ = loop::kErrTransportHandshake;
    clear_ssl_errors();
    error_ = "TLS handshake: the peer closed the connection";
    return failed_;
  }
  // After the handshake, a FIN without close_notify is taken as the end of the stream, as
  // HTTP/1 clients and servers do; the protocol above decides whether it came too early.
  return 0;
}

bool TlsTransport::write_plain(const char* data, size_t len) {
  int r = SSL_write(ssl_.get(), data, static_cast<int>(len));
  if (r == static_cast<int>(len)) return true;
  // The BIO takes every byte, so only a broken stream gets here.
  fail(loop::kErrTransportProtocol, "TLS write");
  return false;
}

int TlsTransport::write(const iovec* parts, size_t count) {
  if (failed_) return failed_;
  if (!ready_) {
    for (size_t i = 0; i < count; ++i)
      held_.append(static_cast<const char*>(parts[i].iov_base), parts[i].iov_len);
    return 0;
  }
  if (shut_) return 0;  // after close_notify, like bytes written after a FIN: dropped
  if (count == 1) {
    if (parts[0].iov_len > 0 &&
        !write_plain(static_cast<const char*>(parts[0].iov_base), parts[0].iov_len))
      return failed_;
    return 0;
  }
  char* gather = tls_gather;
  size_t g = 0;
  for (size_t i = 0; i < count; ++i) {
    const char* p = static_cast<const char*>(parts[i].iov_base);
    size_t len = parts[i].iov_len;
    if (len >= kDirectWrite) {
      if (g > 0) {
        // Top the small pieces up to a full record with the start of this one.
        size_t take = std::min(len, kGather - g);
        std::memcpy(gather + g, p, take);
        p += take;
        len -= take;
        if (!write_plain(gather, g + take)) return failed_;
        g = 0;
      }
      if (len > 0 && !write_plain(p, len)) return failed_;
      continue;
    }
    if (g + len > kGather) {
      if (!write_plain(gather, g)) return failed_;
      g = 0;
    }
    std::memcpy(gather + g, p, len);
    g += len;
  }
  if (g > 0 && !write_plain(gather, g)) return failed_;
  return 0;
}

void TlsTransport::shutdown() {
  if (!ready_ || failed_ || shut_) return;
  shut_ = true;
  // Sends close_notify; not waiting for the peer's (the TCP FIN follows at once).
  if (SSL_shutdown(ssl_.get()) < 0) clear_ssl_errors();
}

int TlsTransport::fail(int code, std::string_view what) {
  failed_ = code;
  std::string detail = verify_failure_;
  // Why our verification refused the peer's certificate (BoringSSL's queue only says that
  // it did); the result means nothing when verification was not what failed.
  uint32_t first = ERR_peek_error();
  long verify = SSL_get_verify_result(ssl_.get());
  if (detail.empty() && ERR_GET_LIB(first) == ERR_LIB_SSL &&
      ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK)
    detail = X509_verify_cert_error_string(verify);
  error_ = ssl_error(Code::Unavailable, what).message();
  if (!detail.empty()) error_ += " (" + detail + ")";
  return code;
}

}  // namespace meshbox::tls
