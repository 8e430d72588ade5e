#include "core/loop/address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <charconv>
#include <cstring>

namespace meshbox::loop {

Result<Address> Address::parse(std::string_view text) {
  std::string_view host, port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return make_error(Code::InvalidArgument,
                        "bad address '" + std::string(text) + "': expected [IPv6]:PORT");
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return make_error(Code::InvalidArgument,
                        "bad address '" + std::string(text) + "': expected HOST:PORT");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535 ||
      port_text.empty())
    return make_error(Code::InvalidArgument, "bad address '" + std::string(text) +
                                                 "': port must be a number from 0 to 65535");
  Address a;
  if (host.empty()) host = "0.0.0.0";
  std::string h(host);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
  } else if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
  } else {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(h.c_str(), nullptr, &hints, &res);
    if (rc != 0 || res == nullptr)
      return make_error(Code::InvalidArgument, "cannot resolve '" + h + "': " + gai_strerror(rc));
    std::memcpy(&a.storage_, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
  }
  a.set_port(static_cast<uint16_t>(port));
  return a;
}

Address Address::from_sockaddr(const sockaddr* sa) {
  Address a;
  std::memcpy(&a.storage_, sa,
              sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  return a;
}

socklen_t Address::len() const {
  return family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

bool Address::operator==(const Address& o) const {
  if (family() != o.family() || port() != o.port()) return false;
  if (family() == AF_INET)
    return std::memcmp(&reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr,
                       &reinterpret_cast<const sockaddr_in*>(&o.storage_)->sin_addr,
                       sizeof(in_addr)) == 0;
  if (family() == AF_INET6)
    return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr,
                       &reinterpret_cast<const sockaddr_in6*>(&o.storage_)->sin6_addr,
                       sizeof(in6_addr)) == 0;
  return true;
}

uint16_t Address::port() const {
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
}

void Address::set_port(uint16_t port) {
  if (family() == AF_INET6)
    reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
  else
    reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
}

std::string Address::ip() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (family() == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
              sizeof buf);
  else
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
  return buf;
}

std::string Address::to_string() const {
  // Appended in place: GCC 12 at -O3 sees a false -Wrestrict in `"[" + ip() + "]:" + …`.
  std::string out;
  bool v6 = family() == AF_INET6;
  if (v6) out += '[';
  out += ip();
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port());
  return out;
}

}  // namespace meshbox::loop
