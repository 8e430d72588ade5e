#include "core/http/serializer.h"

#include <charconv>
#include <cstring>

namespace meshbox::http {

namespace {
void append_headers(const HeaderMap& headers, std::string& out) {
  // One size computation and one resize, then plain copies: this runs twice per proxied
  // request, and piecewise appends cost a capacity check each.
  size_t total = 2;
  for (const auto& h : headers)
    total += h.name.size() + h.value.size() + 4;
  size_t at = out.size();
  out.resize(at + total);
  char* p = out.data() + at;
  for (const auto& h : headers) {
    std::memcpy(p, h.name.data(), h.name.size());
    p += h.name.size();
    *p++ = ':';
    *p++ = ' ';
    std::memcpy(p, h.value.data(), h.value.size());
    p += h.value.size();
    *p++ = '\r';
    *p++ = '\n';
  }
  *p++ = '\r';
  *p++ = '\n';
}
}  // namespace

void append_request_head(const RequestHead& head, std::string& out) {
  out.append(head.method);
  out.push_back(' ');
  out.append(head.target);
  out.append(head.version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  append_headers(head.headers, out);
}

void append_response_head(const ResponseHead& head, std::string& out) {
  out.append(head.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  char num[8];
  auto [end, ec] = std::to_chars(num, num + sizeof num, head.status);
  (void)ec;
  out.append(num, end);
  out.push_back(' ');
  out.append(head.reason.empty() ? reason_phrase(head.status) : std::string_view(head.reason));
  out.append("\r\n");
  append_headers(head.headers, out);
}

void append_chunk_header(size_t size, std::string& out) {
  char num[24];
  auto [end, ec] = std::to_chars(num, num + sizeof num, size, 16);
  (void)ec;
  out.append(num, end);
  out.append("\r\n");
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 418:
      return "I'm a teapot";
    case 421:
      return "Misdirected Request";
    case 422:
      return "Unprocessable Content";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace meshbox::http
