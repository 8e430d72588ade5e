// Fuzz target for core/http/parser.h. Each input goes through a request parser and a response
// parser twice: whole, and in pieces whose sizes are derived from the input. Beyond "never
// crash" it checks the callback protocol (a body only inside a message, one head per message)
// and that the split feed tells the same story as the whole feed.
//
// libFuzzer entry point; in normal builds replay_main.cpp runs the corpus through it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/http/parser.h"

namespace {

using meshbox::http::Parser;
using meshbox::http::ParserCallbacks;
using meshbox::http::ParserLimits;
using meshbox::http::RequestHead;
using meshbox::http::ResponseHead;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "http_parser_fuzz: invariant broken: %s\n", what);
  std::abort();
}

// Writes every event into a transcript; body pieces are merged so that the transcript does
// not depend on how the input was split.
class Transcript : public ParserCallbacks {
 public:
  void on_request_head(RequestHead& h) override {
    head_event();
    text += "H " + h.method + " " + h.target + " 1." + std::to_string(h.version_minor) + " f" +
            std::to_string(static_cast<int>(h.framing)) + " cl" + std::to_string(h.content_length) +
            (h.keep_alive ? " ka" : "") + (h.upgrade ? " up" : "");
    add_headers(h.headers);
  }
  void on_response_head(ResponseHead& h) override {
    head_event();
    text += "H " + std::to_string(h.status) + " " + h.reason + " 1." +
            std::to_string(h.version_minor) + " f" + std::to_string(static_cast<int>(h.framing)) +
            " cl" + std::to_string(h.content_length) + (h.keep_alive ? " ka" : "");
    add_headers(h.headers);
  }
  void on_body(const char* data, size_t len) override {
    if (!in_message) die("on_body outside a message");
    if (len == 0) die("empty on_body");
    text.append(data, len);
  }
  void on_message_complete() override {
    if (!in_message) die("on_message_complete without a head");
    in_message = false;
    text += "|C|";
    completed_at = text.size();
  }

  std::string text;
  size_t completed_at = 0;  // transcript length after the last complete message
  bool in_message = false;

 private:
  void head_event() {
    if (in_message) die("a second head inside a message");
    in_message = true;
    text += "|";
  }
  void add_headers(const meshbox::http::HeaderMap& headers) {
    for (const auto& e : headers)
      text += "\n" + e.name + ":" + e.value;
    text += "|";
  }
};

struct Run {
  std::string transcript;
  size_t completed_at = 0;
  Parser::State state = Parser::State::Ok;
  size_t consumed = 0;  // total input used when parsing stopped
  bool finished = false;
};

uint64_t mix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Parses `in` fed in pieces: whole when `seed` is 0, else pieces of 1..max_piece bytes drawn
// from `seed`, where max_piece is 1 + seed % 64.
Run parse(Parser::Kind kind, std::string_view in, uint64_t seed, int method_pick) {
  Transcript t;
  ParserLimits limits;
  limits.max_head_bytes = 2048;
  limits.max_headers = 16;
  limits.max_body_bytes = method_pick & 4 ? 512 : 0;
  Parser p(kind, t, limits);
  if (kind == Parser::Kind::Response) {
    if ((method_pick & 3) == 1) p.expect_response_to("HEAD");
    if ((method_pick & 3) == 2) p.expect_response_to("CONNECT");
  }
  const size_t max_piece = 1 + (seed % 64);
  Run r;
  size_t pos = 0;
  int stalls = 0;
  while (pos < in.size()) {
    size_t n = in.size() - pos;
    if (seed != 0) n = std::min(n, 1 + static_cast<size_t>(mix(seed) % max_piece));
    Parser::FeedResult fr = p.feed(in.data() + pos, n);
    if (fr.consumed > n) die("consumed more than fed");
    pos += fr.consumed;
    r.state = fr.state;
    if (fr.state == Parser::State::Paused) {
      if (t.in_message) die("paused inside a message");
      stalls = fr.consumed == 0 ? stalls + 1 : 0;
      if (stalls > 1) die("paused twice without progress");
      p.resume();
      continue;
    }
    if (fr.state == Parser::State::Ok) {
      if (fr.consumed != n) die("Ok without consuming everything");
      continue;
    }
    if (fr.state == Parser::State::Stopped) die("Stopped without stop()");
    if (fr.state == Parser::State::Error) {
      if (p.error() == meshbox::http::ParseError::None) die("Error without an error code");
      Parser::FeedResult again = p.feed(in.data(), in.size());
      if (again.state != Parser::State::Error || again.consumed != 0) die("error not sticky");
    }
    break;  // Upgrade or Error
  }
  r.consumed = pos;
  if (r.state == Parser::State::Ok || r.state == Parser::State::Paused) r.finished = p.finish();
  r.transcript = std::move(t.text);
  r.completed_at = t.completed_at;
  return r;
}

void check_same(const Run& whole, const Run& split) {
  bool whole_failed = whole.state == Parser::State::Error || !whole.finished;
  bool split_failed = split.state == Parser::State::Error || !split.finished;
  if (whole.state == Parser::State::Upgrade || split.state == Parser::State::Upgrade) {
    if (whole.state != split.state) die("upgrade depends on the split");
    if (whole.consumed != split.consumed) die("tunnel start depends on the split");
    if (whole.transcript != split.transcript) die("transcript depends on the split (upgrade)");
    return;
  }
  if (whole.state == Parser::State::Error || split.state == Parser::State::Error) {
    // Where exactly an error is noticed may move a body piece; whole messages may not.
    if (whole.state != split.state) die("error depends on the split");
    if (whole.completed_at != split.completed_at ||
        whole.transcript.compare(0, whole.completed_at, split.transcript, 0, split.completed_at) !=
            0)
      die("completed messages before an error depend on the split");
    return;
  }
  if (whole_failed != split_failed) die("finish() depends on the split");
  if (whole.transcript != split.transcript) die("transcript depends on the split");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Split seeds come from the input itself (FNV-1a), so each input replays identically.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; ++i)
    h = (h ^ data[i]) * 0x100000001b3ULL;
  int method_pick = static_cast<int>(h >> 61);
  for (Parser::Kind kind : {Parser::Kind::Request, Parser::Kind::Response}) {
    Run whole = parse(kind, in, 0, method_pick);
    check_same(whole, parse(kind, in, 64, method_pick));  // 64: one byte at a time
    uint64_t seed = h;
    for (int i = 0; i < 3; ++i)
      check_same(whole, parse(kind, in, mix(seed) | 1, method_pick));
  }
  return 0;
}
