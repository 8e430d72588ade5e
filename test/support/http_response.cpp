#include "test/support/http_response.h"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace meshbox::test {

namespace {

constexpr size_t kMaxHead = 1 << 20;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool is_tchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// The last transfer coding in a Transfer-Encoding value.
std::string_view last_coding(std::string_view te) {
  size_t comma = te.rfind(',');
  return trim(comma == std::string_view::npos ? te : te.substr(comma + 1));
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

const std::string* HttpResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return &v;
  }
  return nullptr;
}

size_t HttpResponse::count(std::string_view name) const {
  size_t n = 0;
  for (const auto& h : headers)
    n += iequals(h.first, name) ? 1 : 0;
  return n;
}

std::string HttpResponse::summary() const {
  if (!head_complete) return "no response head (" + error + ")";
  std::string s = "HTTP/1." + std::to_string(version_minor) + " " + std::to_string(status) + " " +
                  reason + ", " + std::to_string(body_bytes) + " body bytes, ";
  s += complete ? "complete" : "INCOMPLETE (" + error + ")";
  if (!body.empty() && body.size() <= 300) {
    std::string_view b(body);
    while (!b.empty() && b.back() == '\n')
      b.remove_suffix(1);
    s += ", body: ";
    s += b;
  }
  return s;
}

void ResponseParser::fail(std::string why) {
  resp_.error = std::move(why);
  state_ = State::Failed;
}

void ResponseParser::deliver(std::string_view data) {
  resp_.body_bytes += data.size();
  if (sink_) {
    sink_(data);
  } else {
    resp_.body.append(data);
  }
}

bool ResponseParser::take_line(std::string_view in, size_t* used) {
  size_t lf = in.find('\n');
  size_t n = lf == std::string_view::npos ? in.size() : lf + 1;
  line_.append(in.substr(0, n));
  *used += n;
  if (line_.size() > 4096) fail("chunk-size or trailer line too long");
  return lf != std::string_view::npos;
}

size_t ResponseParser::feed(std::string_view in) {
  size_t used = 0;
  while (used < in.size() && !done()) {
    std::string_view rest = in.substr(used);
    switch (state_) {
      case State::Head: {
        size_t old = head_.size();
        head_.append(rest);
        size_t pos = head_.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
        if (pos == std::string::npos) {
          used += rest.size();
          if (head_.size() > kMaxHead) fail("response head over 1 MiB");
          break;
        }
        head_.resize(pos + 4);
        used += head_.size() - old;
        parse_head();
        break;
      }
      case State::Body: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(rest.size(), remaining_));
        deliver(rest.substr(0, n));
        used += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          resp_.complete = true;
          state_ = State::Done;
        }
        break;
      }
      case State::UntilClose:
        deliver(rest);
        used += rest.size();
        break;
      case State::ChunkSize: {
        if (!take_line(rest, &used)) break;
        if (line_.size() < 2 || line_[line_.size() - 2] != '\r') {
          fail("chunk-size line not ended by CRLF");
          break;
        }
        std::string_view sv(line_.data(), line_.size() - 2);
        sv = sv.substr(0, sv.find(';'));  // chunk extensions
        uint64_t size = 0;
        auto [end, ec] = std::from_chars(sv.data(), sv.data() + sv.size(), size, 16);
        if (sv.empty() || ec != std::errc() || end != sv.data() + sv.size()) {
          fail("bad chunk-size line '" + std::string(sv) + "'");
          break;
        }
        line_.clear();
        remaining_ = size;
        state_ = size == 0 ? State::Trailers : State::ChunkData;
        break;
      }
      case State::ChunkData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(rest.size(), remaining_));
        deliver(rest.substr(0, n));
        used += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::ChunkCrlf;
        break;
      }
      case State::ChunkCrlf: {
        size_t n = std::min(rest.size(), 2 - line_.size());
        line_.append(rest.substr(0, n));
        used += n;
        if (line_.size() == 2) {
          if (line_ != "\r\n") {
            fail("chunk data not followed by CRLF");
            break;
          }
          line_.clear();
          state_ = State::ChunkSize;
        }
        break;
      }
      case State::Trailers: {
        if (!take_line(rest, &used)) break;
        if (line_.size() < 2 || line_[line_.size() - 2] != '\r') {
          fail("trailer line not ended by CRLF");
          break;
        }
        if (line_ == "\r\n") {
          resp_.complete = true;
          state_ = State::Done;
        }
        line_.clear();
        break;
      }
      case State::Done:
      case State::Failed:
        break;
    }
  }
  return used;
}

void ResponseParser::parse_head() {
  std::string_view head(head_);
  head.remove_suffix(2);  // the empty line's CRLF; every line below ends in CRLF
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    size_t crlf = head.find("\r\n");
    lines.push_back(head.substr(0, crlf));
    head.remove_prefix(crlf + 2);
  }
  for (auto l : lines) {
    if (l.find('\n') != std::string_view::npos || l.find('\r') != std::string_view::npos)
      return fail("bare CR or LF in the response head");
  }
  // Status line: HTTP/1.x SP 3DIGIT SP reason
  std::string_view sl = lines.empty() ? std::string_view() : lines[0];
  if (sl.size() < 12 || sl.substr(0, 7) != "HTTP/1." || sl[8] != ' ' ||
      !std::isdigit(static_cast<unsigned char>(sl[7])) || (sl.size() > 12 && sl[12] != ' '))
    return fail("bad status line '" + std::string(sl) + "'");
  resp_.version_minor = sl[7] - '0';
  auto [end, ec] = std::from_chars(sl.data() + 9, sl.data() + 12, resp_.status);
  if (ec != std::errc() || end != sl.data() + 12 || resp_.status < 100)
    return fail("bad status code in '" + std::string(sl) + "'");
  if (sl.size() > 13) resp_.reason = std::string(sl.substr(13));
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view l = lines[i];
    size_t colon = l.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return fail("bad header line '" + std::string(l) + "'");
    std::string_view name = l.substr(0, colon);
    for (char c : name) {
      if (!is_tchar(c)) return fail("bad header name '" + std::string(name) + "'");
    }
    resp_.headers.emplace_back(std::string(name), std::string(trim(l.substr(colon + 1))));
  }
  resp_.head_complete = true;

  const std::string* te = resp_.header("transfer-encoding");
  const std::string* cl = resp_.header("content-length");
  bool no_body = method_ == "HEAD" || resp_.status < 200 || resp_.status == 204 ||
                 resp_.status == 304 || (method_ == "CONNECT" && resp_.status < 300);
  if (no_body) {
    resp_.framing = HttpResponse::Framing::None;
  } else if (te) {
    if (cl) return fail("both Transfer-Encoding and Content-Length in a response");
    if (!iequals(last_coding(*te), "chunked")) {
      resp_.framing = HttpResponse::Framing::UntilClose;
    } else {
      resp_.framing = HttpResponse::Framing::Chunked;
    }
  } else if (cl) {
    if (resp_.count("content-length") > 1) return fail("several Content-Length headers");
    auto [e, err] = std::from_chars(cl->data(), cl->data() + cl->size(), resp_.content_length);
    if (cl->empty() || err != std::errc() || e != cl->data() + cl->size())
      return fail("bad Content-Length '" + *cl + "'");
    resp_.framing = HttpResponse::Framing::ContentLength;
  } else {
    resp_.framing = HttpResponse::Framing::UntilClose;
  }
  switch (resp_.framing) {
    case HttpResponse::Framing::None:
      resp_.complete = true;
      state_ = State::Done;
      break;
    case HttpResponse::Framing::ContentLength:
      remaining_ = resp_.content_length;
      resp_.complete = remaining_ == 0;
      state_ = remaining_ == 0 ? State::Done : State::Body;
      break;
    case HttpResponse::Framing::Chunked:
      state_ = State::ChunkSize;
      break;
    case HttpResponse::Framing::UntilClose:
      state_ = State::UntilClose;
      break;
  }
}

void ResponseParser::on_eof() {
  if (done()) return;
  if (state_ == State::UntilClose) {
    resp_.complete = true;
    state_ = State::Done;
    return;
  }
  if (state_ == State::Head) {
    fail(head_.empty() ? "connection closed before any response byte"
                       : "connection closed inside the response head");
  } else if (state_ == State::Body) {
    fail("connection closed after " + std::to_string(resp_.body_bytes) + " of " +
         std::to_string(resp_.content_length) + " body bytes");
  } else {
    fail("connection closed inside the chunked body after " + std::to_string(resp_.body_bytes) +
         " bytes (no last chunk)");
  }
}

HttpResponse HttpClient::read_response(Deadline deadline, ReadOptions opts) {
  ResponseParser parser(opts.method);
  if (opts.body_sink) parser.set_body_sink(std::move(opts.body_sink));
  size_t used = parser.feed(pending_);
  pending_.erase(0, used);
  std::string chunk;
  while (!parser.done()) {
    chunk.clear();
    RecvStatus s = conn_.recv_some(chunk, deadline);
    if (s == RecvStatus::Data) {
      used = parser.feed(chunk);
      pending_.append(chunk, used, std::string::npos);
      continue;
    }
    if (s == RecvStatus::Eof) {
      parser.on_eof();
    } else {
      parser.on_eof();  // records what was cut short; the cause goes in front
      std::string what = s == RecvStatus::Timeout ? "deadline passed" : conn_.last_error();
      auto& r = parser.response();
      r.complete = false;
      r.error = what + "; " + r.error;
    }
    break;
  }
  return std::move(parser.response());
}

bool HttpClient::wait_closed(Deadline deadline, RecvStatus* how) {
  RecvStatus s = conn_.read_to_close(pending_, deadline);
  if (how) *how = s;
  return s == RecvStatus::Eof || s == RecvStatus::Reset;
}

HttpResponse get_with_host(std::string_view addr, std::string_view path, std::string_view host,
                           Deadline deadline) {
  std::string request = "GET ";
  request.append(path).append(" HTTP/1.1\r\nHost: ").append(host);
  request += "\r\nConnection: close\r\n\r\n";
  return exchange(addr, request, deadline);
}

HttpResponse exchange(std::string_view addr, std::string_view request, Deadline deadline,
                      std::string_view method) {
  int err = 0;
  HttpClient c = HttpClient::connect(addr, deadline, &err);
  if (!c.valid()) {
    HttpResponse r;
    r.error = "connect to " + std::string(addr) + " failed: " + std::strerror(err);
    return r;
  }
  if (!c.send(request, deadline)) {
    // The peer may have answered and closed before taking everything; read what it said.
  }
  HttpClient::ReadOptions opts;
  opts.method = method;
  return c.read_response(deadline, opts);
}

bool matches_bytes_pattern(std::string_view data, uint64_t offset) {
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] != kBytesAlphabet[(offset + i) % kBytesAlphabet.size()]) return false;
  }
  return true;
}

void Fnv1a::update(std::string_view data) {
  uint64_t h = h_;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h_ = h;
}

std::string Fnv1a::hex() const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
  return buf;
}

}  // namespace meshbox::test
