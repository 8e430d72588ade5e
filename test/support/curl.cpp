#include "test/support/curl.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "test/support/process.h"

extern char** environ;

namespace meshbox::test {

namespace {

std::vector<std::string> environment_without_proxies() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    std::string name(kv.substr(0, kv.find('=')));
    for (char& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.ends_with("_proxy")) continue;
    env.emplace_back(kv);
  }
  if (env.empty()) env.emplace_back("MESHBOX_TEST=1");  // empty would mean "inherit"
  return env;
}

}  // namespace

std::string CurlResult::summary() const {
  std::string s = "curl exit " + std::to_string(exit_code) + (timed_out ? " (timed out)" : "") +
                  ", " + std::to_string(out_bytes) + " bytes on stdout";
  if (!err.empty()) s += ", stderr: " + err;
  return s;
}

CurlResult run_curl(const std::vector<std::string>& args, Deadline deadline, CurlIo io) {
  SpawnOptions opts;
  opts.argv = {"curl", "-sS"};
  opts.argv.insert(opts.argv.end(), args.begin(), args.end());
  opts.pipe_stdin = static_cast<bool>(io.stdin_source);
  opts.pipe_stdout = opts.pipe_stderr = true;
  opts.env = environment_without_proxies();
  Process proc(opts);

  CurlResult r;
  int in = proc.stdin_fd(), out = proc.stdout_fd(), err = proc.stderr_fd();
  if (in >= 0) ::fcntl(in, F_SETFL, ::fcntl(in, F_GETFL) | O_NONBLOCK);
  std::string inbuf;  // generated, not yet written
  size_t inpos = 0;
  bool in_done = in < 0, out_done = false, err_done = false;
  std::vector<char> buf(256 * 1024);

  while (!(out_done && err_done) && !deadline.expired()) {
    pollfd p[3];
    int n = 0, in_i = -1, out_i = -1, err_i = -1;
    if (!in_done) {
      in_i = n;
      p[n++] = {in, POLLOUT, 0};
    }
    if (!out_done) {
      out_i = n;
      p[n++] = {out, POLLIN, 0};
    }
    if (!err_done) {
      err_i = n;
      p[n++] = {err, POLLIN, 0};
    }
    if (::poll(p, static_cast<nfds_t>(n), deadline.poll_ms()) < 0 && errno != EINTR) break;
    if (in_i >= 0 && p[in_i].revents) {
      if (inpos == inbuf.size()) {
        inbuf.resize(buf.size());
        inbuf.resize(io.stdin_source(inbuf.data(), inbuf.size()));
        inpos = 0;
      }
      if (inbuf.empty()) {
        proc.close_stdin();
        in_done = true;
      } else {
        ssize_t w = ::write(in, inbuf.data() + inpos, inbuf.size() - inpos);
        if (w > 0) {
          inpos += static_cast<size_t>(w);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          proc.close_stdin();  // curl stopped reading (it failed); its exit code says why
          in_done = true;
        }
      }
    }
    auto drain = [&](int idx, int fd, bool& done, bool is_out) {
      if (idx < 0 || !p[idx].revents) return;
      ssize_t m = ::read(fd, buf.data(), buf.size());
      if (m > 0) {
        std::string_view chunk(buf.data(), static_cast<size_t>(m));
        if (is_out) {
          r.out_bytes += chunk.size();
          if (io.stdout_sink) {
            io.stdout_sink(chunk);
          } else {
            r.out.append(chunk);
          }
        } else {
          r.err.append(chunk);
        }
      } else if (m == 0 || (errno != EAGAIN && errno != EINTR)) {
        done = true;
      }
    };
    drain(out_i, out, out_done, true);
    drain(err_i, err, err_done, false);
  }
  auto status = proc.wait(deadline);
  if (!status) {
    r.timed_out = true;
    proc.kill_and_wait();
    return r;
  }
  r.exit_code = status->exited ? status->code : -1;
  while (!r.err.empty() && r.err.back() == '\n')
    r.err.pop_back();
  return r;
}

CurlHttpResult curl_http(std::vector<std::string> args, Deadline deadline) {
  args.insert(args.begin(), {"--write-out", "\n%{http_code}"});
  CurlHttpResult r;
  r.run = run_curl(args, deadline);
  size_t nl = r.run.out.rfind('\n');
  if (nl != std::string::npos) {
    r.status = std::atoi(r.run.out.c_str() + nl + 1);
    r.body = r.run.out.substr(0, nl);
  }
  return r;
}

}  // namespace meshbox::test
