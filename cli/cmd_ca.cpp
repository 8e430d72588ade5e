// meshbox ca: the mesh's certificate authority from the command line (plane/control/ca.h).
// `ca root` prints the root peers trust, making the CA first if the state dir has none, as
// `meshbox run` would; `ca issue` issues a certificate for something outside the mesh.
// Exit 0 ok, 1 the CA cannot be opened or written, 2 bad usage (a bad SPIFFE ID or TTL).
#include <string>
#include <vector>

#include <fmt/chrono.h>
#include <fmt/core.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/base/file.h"
#include "plane/control/ca.h"
#include "plane/control/control_plane.h"

namespace meshbox::cli {

namespace {

constexpr const char* kUsage = R"(usage: meshbox ca COMMAND [flags]

The mesh's certificate authority. Its files live in the state dir of `meshbox run`:
STATE_DIR/ca holds meshbox's own root (ECDSA P-256, made on first use, the key mode 0600);
an operator's CA in STATE_DIR/cacerts (Istio's ca-cert.pem, ca-key.pem, root-cert.pem,
cert-chain.pem) is used instead when ca-key.pem is there. See docs/security.md.

commands:
  root     print the root certificate (PEM); makes the CA if there is none yet
  issue    issue a certificate and private key for a SPIFFE ID (meshbox ca issue --help)

flags:
  --state-dir DIR   default ./.meshbox, as for `meshbox run`
  -h, --help        this help
)";

constexpr const char* kIssueUsage =
    R"(usage: meshbox ca issue --spiffe ID [--ttl DUR] [--out DIR] [--state-dir DIR]

Issues a certificate and a fresh ECDSA P-256 key for ID, signed by the mesh's CA: for a
client or server outside the mesh that talks mTLS to it. The certificate carries ID as its
one URI SAN (an X.509-SVID) and may be used as client and as server certificate.
Mesh workloads are spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT, TRUST_DOMAIN
being [mesh] trust_domain (default cluster.local).

Without --out, prints the certificate, any intermediate CA certificates and the private
key, PEM, on stdout. With --out, writes DIR/cert.pem (the certificate), DIR/chain.pem (it
and the intermediates: what a TLS endpoint sends), DIR/root.pem (the root to trust) and
DIR/key.pem (mode 0600); DIR is made (mode 0700) if missing.

flags:
  --spiffe ID       spiffe://TRUST_DOMAIN/PATH (required)
  --ttl DUR         lifetime, 1m to 2160h (90 days); default 24h
  --out DIR         write files instead of printing
  --state-dir DIR   default ./.meshbox, as for `meshbox run`
  -h, --help        this help
)";

int usage_error(const std::string& command, const std::string& message) {
  fmt::print(stderr, "meshbox ca{}: {}\nrun 'meshbox ca{} --help' for usage\n",
             command.empty() ? "" : " " + command, message, command.empty() ? "" : " " + command);
  return 2;
}

int failure(const std::string& command, const std::string& message) {
  fmt::print(stderr, "meshbox ca {}: {}\n", command, message);
  return 1;
}

std::string state_dir(const Args& args) {
  return args.get("state-dir").value_or(control::ControlOptions{}.state_dir);
}

int ca_root(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 3, {{"state-dir"}, {"help", false}});
  if (!args) return usage_error("root", args.error().message());
  if (!args->positional().empty())
    return usage_error("root", "unexpected argument '" + args->positional()[0] + "'");
  auto ca = control::CertificateAuthority::open(state_dir(*args));
  if (!ca) return failure("root", ca.error().message());
  fmt::print("{}", (*ca)->root_pem());
  return 0;
}

int ca_issue(int argc, char** argv) {
  auto args =
      Args::parse(argc, argv, 3, {{"spiffe"}, {"ttl"}, {"out"}, {"state-dir"}, {"help", false}});
  if (!args) return usage_error("issue", args.error().message());
  if (!args->positional().empty())
    return usage_error("issue", "unexpected argument '" + args->positional()[0] + "'");
  auto id = args->get("spiffe");
  if (!id) return usage_error("issue", "--spiffe ID is required");
  std::chrono::seconds ttl = control::kDefaultWorkloadCertTtl;
  if (auto v = args->get("ttl")) {
    auto ms = parse_duration_ms(*v);
    if (!ms) return usage_error("issue", "--ttl: " + ms.error().message());
    ttl = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::milliseconds(*ms));
  }
  // Checked before the CA is opened: a typo makes no CA.
  if (Status s = control::check_issue_request(*id, ttl); !s.is_ok())
    return usage_error("issue", s.message());

  auto ca = control::CertificateAuthority::open(state_dir(*args));
  if (!ca) return failure("issue", ca.error().message());
  auto cert = (*ca)->issue(*id, ttl);
  if (!cert) return failure("issue", cert.error().message());

  auto out = args->get("out");
  if (!out) {
    // The key is revealed here because printing it is what was asked for.
    fmt::print("{}{}", cert->chain_pem(), cert->key_pem().reveal());
    return 0;
  }
  if (Status s = make_dirs(*out, 0700); !s.is_ok()) return failure("issue", s.message());
  struct File {
    std::string name;
    std::string content;
  };
  const File files[] = {
      {"cert.pem", cert->cert_pem()},
      {"chain.pem", cert->chain_pem()},
      {"root.pem", (*ca)->root_pem()},
  };
  for (const auto& f : files)
    if (Status s = write_file_atomic(*out + "/" + f.name, f.content, 0644); !s.is_ok())
      return failure("issue", s.message());
  if (Status s = write_file_atomic(*out + "/key.pem", cert->key_pem().reveal(), 0600); !s.is_ok())
    return failure("issue", s.message());
  fmt::print("wrote {0}/cert.pem, {0}/chain.pem, {0}/root.pem and {0}/key.pem (mode 0600)\n", *out);
  fmt::print("{}, serial {}, valid until {:%Y-%m-%dT%H:%M:%SZ}\n", cert->spiffe_id,
             cert->leaf.serial_hex(),
             fmt::gmtime(std::chrono::system_clock::to_time_t(cert->leaf.not_after())));
  return 0;
}

}  // namespace

int cmd_ca(int argc, char** argv) {
  std::string sub = argc > 2 ? argv[2] : "";
  bool help = wants_help(argc, argv) || sub == "help";
  if (help) {
    fmt::print("{}", sub == "issue" ? kIssueUsage : kUsage);
    return 0;
  }
  if (sub == "root") return ca_root(argc, argv);
  if (sub == "issue") return ca_issue(argc, argv);
  if (sub.empty()) return usage_error("", "a command is required: root or issue");
  return usage_error("", "unknown command '" + sub + "': expected root or issue");
}

}  // namespace meshbox::cli
