// Sockets in another network namespace (Linux). A socket belongs to the namespace that was
// current on the calling thread when socket(2) ran, and stays there: so the calling thread
// enters the namespace (setns(2), allowed for CLONE_NEWNET on one thread of a multithreaded
// process), makes the socket, and returns to the namespace it was in before; the fd then goes
// to libuv (uv_tcp_open) like any other. Transparent capture (plane/control/netns.h) uses it for
// a captured workload's sidecar listeners and its inbound sidecar's connections to the app.
// Any thread may call these; each call is a few system calls (two opens, two setns), and needs
// CAP_SYS_ADMIN.
#pragma once

#include <string>

#include "core/base/result.h"
#include "core/loop/address.h"

namespace meshbox::loop {

/// A non-blocking, close-on-exec TCP socket of `family` created in the network namespace at
/// `netns_path` (/run/netns/NAME, or /proc/PID/ns/net). "" = the calling thread's own
/// namespace. Errors name the namespace.
Result<int> tcp_socket_in_netns(const std::string& netns_path, int family);

/// bind_reuseport() (tcp_listener.h), in the network namespace at `netns_path` ("" = here).
Result<int> bind_reuseport_in_netns(const std::string& netns_path, const Address& addr,
                                    int backlog = 1024, int incoming_cpu = -1);

}  // namespace meshbox::loop
