// Transport: a byte filter that a TcpConn runs between its socket and its user — TLS
// (core/tls/tls_transport.h) is the implementation. Once TcpConn::set_transport() installs
// one, the socket's bytes go to the transport and what it decodes goes to on_data; what the
// user writes goes to the transport and what it encodes goes to the socket. Handshake bytes
// flow without the user. core/loop knows nothing of TLS: this header is all it sees, and it
// depends on core/base only.
//
// Ownership: the TcpConn owns its Transport and destroys it with itself. Loop thread only.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <string>

namespace meshbox::loop {

/// on_error codes a Transport adds to libuv's negative UV_E* codes (far outside their range).
/// loop::uv_error() names them; Transport::error_detail() says why, for the log.
/// The handshake failed: the peer's certificate was refused (or ours was), no common
/// version or cipher, the peer hung up before it finished.
inline constexpr int kErrTransportHandshake = -30001;
/// The secure stream broke after the handshake: a bad record, an alert from the peer.
inline constexpr int kErrTransportProtocol = -30002;

/// The connection side of a Transport (TcpConn implements it).
class TransportIo {
 public:
  /// Encoded bytes for the socket (TLS records), in order. Never fails: what the socket
  /// does not take at once is queued and counts against the connection's watermarks.
  virtual void send_to_peer(const char* data, size_t len) = 0;
  /// Whether the user wants decoded bytes now (it is reading, the connection is open).
  virtual bool wants_data() const = 0;
  /// Decoded bytes for the user, valid during the call only. Returns wants_data() after it.
  virtual bool deliver(const char* data, size_t len) = 0;
  /// The handshake finished; whatever the user wrote before has been handed to
  /// send_to_peer. Returns whether the connection is still open.
  virtual bool on_transport_ready() = 0;
  /// The peer ended its stream inside the transport (TLS close_notify): no more data comes.
  virtual void on_transport_eof() = 0;

 protected:
  ~TransportIo() = default;
};

class Transport {
 public:
  virtual ~Transport() = default;

  /// Called once, by TcpConn::set_transport().
  virtual void attach(TransportIo* io) = 0;
  /// The TCP connection is up (or already was): a client sends its first handshake flight.
  /// Returns 0 or a kErrTransport* code.
  virtual int start() = 0;
  /// Bytes the socket read; `data` may be null to go on with input kept from before. Runs
  /// the handshake and delivers decoded bytes as long as the io wants them; whatever is
  /// left is copied and kept (has_input()). Returns 0 or a kErrTransport* code.
  virtual int on_read(const char* data, size_t len) = 0;
  /// Bytes that reached the connection before the transport did (a listener peeked at
  /// them): kept, and processed first by the next on_read().
  virtual void add_input(const char* data, size_t len) = 0;
  /// The socket reached EOF (after every byte read was given to on_read). Returns 0 when
  /// that is an end of stream, or a kErrTransport* code (EOF in the middle of a handshake).
  virtual int on_socket_eof() = 0;
  /// User bytes to send; held until the handshake finishes. Returns 0 or a kErrTransport*
  /// code (the stream already failed).
  virtual int write(const iovec* parts, size_t count) = 0;
  /// Ends the outgoing stream (TLS close_notify), after everything written so far.
  virtual void shutdown() = 0;

  /// The handshake finished: user bytes flow.
  virtual bool ready() const = 0;
  /// Input kept but not processed yet (the user stopped reading): the connection reads no
  /// more from the socket until it has been consumed.
  virtual bool has_input() const = 0;
  /// User bytes held until the handshake finishes.
  virtual size_t held() const = 0;
  /// Why the transport failed, for a log line ("" while it has not).
  virtual const std::string& error_detail() const = 0;
};

using TransportPtr = std::unique_ptr<Transport>;

}  // namespace meshbox::loop
