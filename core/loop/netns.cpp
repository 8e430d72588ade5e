#include "core/loop/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/base/assert.h"
#include "core/loop/tcp_listener.h"

namespace meshbox::loop {

namespace {

// Runs `fn` with the calling thread in the namespace at `path`, then puts the thread back.
// Failing to return would leave a worker (or the control loop) in a workload's namespace for
// good, making every later socket there: fatal (MB_CHECK), and not expected of the kernel once
// entering worked.
template <class Fn>
auto in_netns(const std::string& path, Fn&& fn) -> decltype(fn()) {
  if (path.empty()) return fn();
  int target = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0)
    return make_error(Code::Unavailable, "network namespace " + path + ": " + std::strerror(errno));
  int home = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) {
    int err = errno;
    ::close(target);
    return make_error(Code::Io, std::string("/proc/thread-self/ns/net: ") + std::strerror(err));
  }
  if (::setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    ::close(target);
    ::close(home);
    return make_error(Code::Unavailable,
                      "cannot enter network namespace " + path + ": " + std::strerror(err));
  }
  ::close(target);
  auto result = fn();
  int rc = ::setns(home, CLONE_NEWNET);
  ::close(home);
  MB_CHECK(rc == 0);
  return result;
}

}  // namespace

Result<int> tcp_socket_in_netns(const std::string& netns_path, int family) {
  return in_netns(netns_path, [family]() -> Result<int> {
    int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error(Code::Io, std::string("socket: ") + std::strerror(errno));
    return fd;
  });
}

Result<int> bind_reuseport_in_netns(const std::string& netns_path, const Address& addr, int backlog,
                                    int incoming_cpu) {
  return in_netns(netns_path,
                  [&]() -> Result<int> { return bind_reuseport(addr, backlog, incoming_cpu); });
}

}  // namespace meshbox::loop
