// Connection: one accepted TCP connection of meshbox-httpbin: parses requests, answers them
// one at a time in arrival order, and after a WebSocket handshake echoes frames. Owned by
// Server (see Server::release()); Loop thread only.
//
// Memory stays small per connection: bytes are handled straight out of the loop's shared
// read buffer, and only the tail of a read that follows a complete request (pipelining) is
// copied, into held_, while that request is answered. Reading stops while such bytes wait
// and while the socket's pending output is above its high watermark; on_drained() resumes.
// Responses and echoed bodies are produced piece by piece, never whole.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/base/non_copyable.h"
#include "core/http/message.h"
#include "core/http/parser.h"
#include "core/loop/loop.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/timer.h"
#include "examples/httpbin/route.h"
#include "examples/httpbin/ws_frame_parser.h"

namespace meshbox::httpbin {

class Server;

class Connection : public loop::Deferred,
                   public loop::TcpConnCallbacks,
                   public http::ParserCallbacks,
                   public WsFrameHandler,
                   NonCopyable {
 public:
  /// `id` is the connection's serial number, reported in x-backend-conn.
  Connection(Server& server, loop::TcpConnPtr tcp, uint64_t id);
  ~Connection() override;

  /// Starts reading. Call once the server holds the connection.
  void start();
  /// Closes the socket now (unsent output is dropped) and hands this object back to the
  /// server for deletion after the current callback. Idempotent; no callback follows.
  void close();

  // loop::TcpConnCallbacks
  void on_data(const char* data, size_t len) override;
  void on_eof() override;
  void on_error(int uv_error) override;
  void on_drained() override;
  void on_flushed() override;

  // http::ParserCallbacks
  void on_request_head(http::RequestHead& head) override;
  void on_body(const char* data, size_t len) override;
  void on_message_complete() override;

  // WsFrameHandler
  void on_frame_begin(WsOpcode opcode, bool fin, uint64_t length) override;
  void on_frame_payload(const char* data, size_t len) override;
  void on_frame_end() override;

 private:
  enum class State {
    Parsing,     // reading requests; a request body may be streaming through
    Responding,  // a request is complete and its response is still being produced
    WebSocket,   // after the 101: echoing frames
    Closing,     // the last bytes are queued: flush them, then FIN (or RST if aborting_)
    Lingering,   // FIN sent: discard input until the peer closes or the timer fires
  };

  // Per-connection WebSocket state, allocated at the upgrade.
  struct WsSession {
    explicit WsSession(WsFrameHandler& handler) : parser(handler) {}
    WsFrameParser parser;
    std::array<char, 125> control{};  // payload of the control frame being read
    size_t control_len = 0;
    WsOpcode control_op = WsOpcode::Ping;
    bool in_control = false;
  };

  // Input.
  size_t parse(const char* data, size_t len);
  void process_held();
  bool held_empty() const { return held_off_ >= held_.size(); }
  void resume_parser();
  void try_continue();
  void update_reading();
  void finish_input();
  void on_parse_error();
  void on_timer();

  // Requests and responses.
  void respond();
  void response_done();
  void start_echo(const http::RequestHead& head);
  void build_headers_json(const http::RequestHead& head);
  void check_ws_handshake(const http::RequestHead& head);
  void accept_websocket();
  void start_bytes();
  void produce();
  void send_status_endpoint();
  http::ResponseHead base_head(int status) const;
  void send_head(http::ResponseHead& head, std::string_view content_type, http::Framing framing,
                 uint64_t length);
  void send_response(int status, std::string_view content_type, std::string_view body);
  void send(std::string_view bytes);
  void send_chunk(const char* data, size_t len);
  void start_close();
  void start_abort();
  void close_socket(bool reset);
  loop::Timer& timer();

  // WebSocket.
  void ws_input(const char* data, size_t len);
  void send_ws_frame(WsOpcode opcode, std::string_view payload);
  void ws_fail(const char* reason);

  Server& server_;
  loop::TcpConnPtr tcp_;
  const uint64_t id_;
  std::unique_ptr<http::Parser> parser_;
  std::unique_ptr<loop::Timer> timer_;  // /delay/MS, then the close deadlines
  std::unique_ptr<WsSession> ws_;
  State state_ = State::Parsing;
  std::string held_;           // input after a complete request, waiting for its response
  size_t held_off_ = 0;        // bytes of held_ already parsed
  bool paused_ = false;        // the parser stopped after a message and awaits resume_parser()
  bool parser_reset_ = false;  // that message was an ignored Upgrade: rebuild the parser
  bool in_parse_ = false;
  bool peer_eof_ = false;
  bool aborting_ = false;  // Closing ends in a reset, not FIN (/abort-mid-body)
  bool closed_ = false;

  // The request being answered.
  Route route_;
  bool keep_alive_ = true;
  bool http10_ = false;
  bool head_only_ = false;  // HEAD: the GET response's head without its body
  bool response_started_ = false;
  bool chunked_response_ = false;
  int ws_status_ = 0;          // /ws: 101 if the handshake is valid, else the error status
  uint64_t body_bytes_ = 0;    // /upload
  uint64_t fnv_ = 0;           // /upload: FNV-1a of the body so far
  uint64_t remaining_ = 0;     // /bytes: bytes still to produce
  uint64_t produced_ = 0;      // /bytes: bytes produced so far
  std::string response_body_;  // /headers JSON, /ws accept key or error text
};

}  // namespace meshbox::httpbin
