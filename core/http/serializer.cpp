#include "core/http/serializer.h"

#include <charconv>

namespace meshbox::http {

namespace {
void append_headers(const HeaderMap& headers, std::string& out) {
  for (const auto& h : headers) {
    out.append(h.name);
    out.append(": ");
    out.append(h.value);
    out.append("\r\n");
  }
  out.append("\r\n");
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
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace meshbox::http
