// Address: an IPv4/IPv6 socket address parsed from "host:port", "[v6]:port" or ":port".
// Host names are resolved with getaddrinfo, which blocks: call parse() at start-up or on the
// control loop, never on a worker. Immutable value type.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

#include "core/base/result.h"

namespace meshbox::loop {

class Address {
 public:
  Address() = default;
  /// Parses "host:port"; an empty host means every interface (0.0.0.0).
  static Result<Address> parse(std::string_view text);
  static Address from_sockaddr(const sockaddr* sa);

  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t len() const;
  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  void set_port(uint16_t port);
  /// "127.0.0.1:8080" / "[::1]:8080".
  std::string to_string() const;
  /// Just the IP, for X-Forwarded-For.
  std::string ip() const;
  /// Same family, IP and port.
  bool operator==(const Address& o) const;

 private:
  sockaddr_storage storage_{};
};

}  // namespace meshbox::loop
