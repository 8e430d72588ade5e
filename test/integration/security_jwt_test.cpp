// Request authentication (Istio's RequestAuthentication, Envoy's jwt_authn) on a real
// `meshbox run`: a gateway and a workload behind its sidecar, each with its own rule. Keys are
// made with the openssl CLI, tokens signed with `openssl dgst -sign` (ES256's DER signature
// turned into JWS's r||s by a short python3 script), and the key sets come inline, from a
// file:// URI (re-read when the file changes) and from an http:// URI served by python3's
// http.server (fetched by the control plane, retried until the server is up). Checked with
// raw HTTP/1.1 and curl: Envoy's status codes, bodies and www-authenticate challenges, what
// the app receives (the token removed unless forward_original_token, the payload header),
// keep-alive after a 401, and an authorization_policy on request_principals.
#include <doctest/doctest.h>

#include <ctime>
#include <fstream>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

// `sh -c SCRIPT` to completion: stdout (and stderr) as text.
std::string shell(TempDir& dir, const std::string& script) {
  std::string text = test::shell(dir, script, Deadline(kTimeout));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text.pop_back();
  return text;
}

bool has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// jwt.py jwks KID:RSA|EC:PEM… → a JWKS; jwt.py token PEM ALG KID PAYLOAD → a compact JWS.
constexpr const char* kJwtPy = R"PY(
import base64, json, subprocess, sys
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
def run(args, data=None):
    return subprocess.run(args, input=data, capture_output=True, check=True).stdout
def der_int(b, i):
    assert b[i] == 2; n = b[i + 1]; return int.from_bytes(b[i + 2:i + 2 + n], 'big'), i + 2 + n
def der_to_raw(der, size):
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    r, i = der_int(der, i); s, _ = der_int(der, i)
    return r.to_bytes(size, 'big') + s.to_bytes(size, 'big')
if sys.argv[1] == 'jwks':
    keys = []
    for spec in sys.argv[2:]:
        kid, kty, pem = spec.split(':', 2)
        if kty == 'RSA':
            mod = run(['openssl', 'rsa', '-in', pem, '-noout', '-modulus']).decode().strip()
            keys.append({'kty': 'RSA', 'kid': kid, 'alg': 'RS256', 'use': 'sig',
                         'n': b64(bytes.fromhex(mod.split('=', 1)[1])), 'e': 'AQAB'})
        else:
            pt = run(['openssl', 'ec', '-in', pem, '-pubout', '-outform', 'DER'])[-65:]
            keys.append({'kty': 'EC', 'kid': kid, 'crv': 'P-256', 'x': b64(pt[1:33]), 'y': b64(pt[33:])})
    print(json.dumps({'keys': keys}))
else:
    pem, alg, kid, payload = sys.argv[2:6]
    header = {'alg': alg, 'typ': 'JWT'}
    if kid: header['kid'] = kid
    signing = b64(json.dumps(header).encode()) + '.' + b64(payload.encode())
    sig = run(['openssl', 'dgst', '-sha256', '-sign', pem], signing.encode())
    if alg == 'ES256': sig = der_to_raw(sig, 32)
    print(signing + '.' + b64(sig))
)PY";

struct Keys {
  TempDir& dir;
  std::string token(const std::string& key, const std::string& alg, const std::string& kid,
                    const std::string& payload) {
    std::string t = shell(dir, "cd " + dir.path() + " && python3 jwt.py token " + key + " " + alg +
                                   " '" + kid + "' '" + payload + "'");
    REQUIRE_MESSAGE(std::count(t.begin(), t.end(), '.') == 2, t);
    return t;
  }
};

std::string payload(const std::string& iss, const std::string& aud, int64_t exp_in_s,
                    const std::string& extra = "") {
  int64_t now = std::time(nullptr);
  return R"({"iss":")" + iss + R"(","sub":"alice","aud":")" + aud + R"(","exp":)" +
         std::to_string(now + exp_in_s) + extra + "}";
}

HttpResponse get(const std::string& addr, const std::string& target,
                 const std::string& extra_headers = "") {
  return exchange(
      addr,
      "GET " + target + " HTTP/1.1\r\nHost: web\r\n" + extra_headers + "Connection: close\r\n\r\n",
      Deadline(kTimeout));
}

std::string bearer(const std::string& token) {
  return "Authorization: Bearer " + token + "\r\n";
}

}  // namespace

TEST_CASE("jwt: gateway and sidecar rules; inline, file and http key sets; Envoy's answers") {
  TempDir dir;
  std::ofstream(dir.file("jwt.py")) << kJwtPy;
  // Keys: "rsa" signs the workload's tokens, "rsa2" is a stranger (then the rotated key),
  // "ec" signs the gateway's and the http-fetched issuer's.
  std::string made = shell(dir, "set -e; cd " + dir.path() + R"(
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out ec.pem
python3 jwt.py jwks k1:RSA:rsa.pem > rsa-jwks.json
python3 jwt.py jwks e1:EC:ec.pem > ec-jwks.json
mkdir www; cp ec-jwks.json www/jwks.json
echo made)");
  REQUIRE_MESSAGE(has(made, "made"), made);
  std::string ec_jwks = read_file(dir.file("ec-jwks.json")).value_or("");
  while (!ec_jwks.empty() && ec_jwks.back() == '\n')
    ec_jwks.pop_back();
  REQUIRE(has(ec_jwks, "\"kty\": \"EC\""));
  Keys keys{dir};

  uint16_t gw_port = free_port();
  uint16_t www_port = free_port();
  std::string gw = "127.0.0.1:" + std::to_string(gw_port);
  std::ofstream(dir.file("mesh.toml"))
      << "[[service]]\nname = \"web\"\nport = 8000\n\n"
      << "[[workload]]\nname = \"web\"\nservice = \"web\"\nlabels = { app = \"web\" }\n"
      << "command = [\"" << httpbin_bin()
      << "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"web\"]\n"
      << "health = { http = \"/\", interval = \"100ms\" }\n\n"
      << "[[gateway]]\nname = \"edge\"\nselector = { app = \"edge\" }\nservers = [{ port = "
      << gw_port << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
      << "[[virtual_service]]\nname = \"web\"\nhosts = [\"web\"]\ngateways = [\"edge\"]\n"
      << "http = [{ route = [{ destination = { host = \"web\" } }] }]\n\n"
      // The gateway: EC tokens in x-jwt (kept), the payload to the app in x-jwt-payload.
      << "[[request_authentication]]\nname = \"edge\"\n"
      << "selector = { match_labels = { app = \"edge\" } }\n"
      << "[[request_authentication.jwt_rules]]\nissuer = \"issuer-ec\"\njwks = '" << ec_jwks
      << "'\nfrom_headers = [{ name = \"x-jwt\" }]\n"
      << "output_payload_to_header = \"x-jwt-payload\"\nforward_original_token = true\n\n"
      // The workload: RSA tokens at the default places, audience "web", keys from a file;
      // and an issuer whose keys come over HTTP from a server not started yet.
      << "[[request_authentication]]\nname = \"web\"\n"
      << "selector = { match_labels = { app = \"web\" } }\n"
      << "[[request_authentication.jwt_rules]]\nissuer = \"issuer-rsa\"\naudiences = [\"web\"]\n"
      << "jwks_uri = \"file://" << dir.file("rsa-jwks.json") << "\"\n"
      << "[[request_authentication.jwt_rules]]\nissuer = \"issuer-http\"\n"
      << "jwks_uri = \"http://127.0.0.1:" << www_port << "/jwks.json\"\ntimeout = \"2s\"\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  REQUIRE(eventually([&] { return get(gw, "/headers").status == 200; }, kTimeout));

  {
    INFO("http:// keys: 401 until fetched, then the control plane retries and gets them");
    std::string t = keys.token("ec.pem", "ES256", "e1", payload("issuer-http", "x", 600));
    HttpResponse r = get(gw, "/headers", bearer(t));
    CHECK(r.status == 401);
    CHECK(r.body == "Jwks remote fetch is failed");
    SpawnOptions server;
    server.argv = {"python3", "-m",        "http.server", std::to_string(www_port),
                   "--bind",  "127.0.0.1", "--directory", dir.file("www")};
    Process www(server);
    std::string www_addr = "127.0.0.1:" + std::to_string(www_port);
    REQUIRE(eventually(
        [&] {
          return exchange(www_addr, "GET /jwks.json HTTP/1.0\r\n\r\n", Deadline(kTimeout)).status ==
                 200;
        },
        kTimeout));
    // The next retry (1 s, then 2 s, 4 s… after the failures so far) gets the set.
    CHECK(eventually([&] { return get(gw, "/headers", bearer(t)).status == 200; }, 20s));
  }
  std::string good = keys.token("rsa.pem", "RS256", "k1", payload("issuer-rsa", "web", 600));
  {
    INFO("no token: let through (Istio); a valid one: 200, and the app never sees it");
    HttpResponse r = get(gw, "/headers");
    CHECK(r.status == 200);
    r = get(gw, "/headers?x=1&access_token=" + good + "&y=2", bearer(good));
    CHECK(r.status == 200);
    CHECK_FALSE(has(r.body, good));
    CHECK_FALSE(has(r.body, "\"authorization\""));
    CHECK_FALSE(has(r.body, "Authorization"));
    CHECK(has(r.body, "\"target\":\"/headers?x=1&y=2\""));
  }
  {
    INFO("refused tokens: Envoy's status, body and challenge");
    struct Case {
      std::string token, body;
      int status;
    };
    std::vector<Case> cases = {
        {keys.token("rsa.pem", "RS256", "k1", payload("issuer-rsa", "web", -120)), "Jwt is expired",
         401},
        {keys.token("rsa.pem", "RS256", "k1",
                    payload("issuer-rsa", "web", 600,
                            R"(,"nbf":)" + std::to_string(std::time(nullptr) + 600))),
         "Jwt not yet valid", 401},
        {keys.token("rsa.pem", "RS256", "k1", payload("someone-else", "web", 600)),
         "Jwt issuer is not configured", 401},
        {keys.token("rsa.pem", "RS256", "k1", payload("issuer-rsa", "other-app", 600)),
         "Audiences in Jwt are not allowed", 403},
        {keys.token("rsa2.pem", "RS256", "k1", payload("issuer-rsa", "web", 600)),
         "Jwt verification fails", 401},
        {keys.token("rsa.pem", "RS256", "k9", payload("issuer-rsa", "web", 600)),
         "Jwks doesn't have key to match kid or alg from Jwt", 401},
        {"not.a.jwt", "Jwt header is an invalid Base64url encoded", 401},
        {"nodots",
         "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections", 401},
    };
    for (const Case& c : cases) {
      CAPTURE(c.body);
      HttpResponse r = get(gw, "/headers?q=1", bearer(c.token));
      CHECK(r.status == c.status);
      CHECK(r.body == c.body);
      // The sidecar answers: the request reached it over mesh mTLS, so its scheme is https.
      REQUIRE(r.header("www-authenticate"));
      CHECK(*r.header("www-authenticate") ==
            "Bearer realm=\"https://web/headers?q=1\", error=\"invalid_token\"");
    }
    // The same through the query parameter.
    HttpResponse r = get(gw, "/headers?access_token=" + cases[0].token);
    CHECK(r.status == 401);
    CHECK(r.body == "Jwt is expired");
  }
  {
    INFO("a 401 keeps the connection: curl reuses it for the next request");
    CurlResult c =
        run_curl({"-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code}:%{num_connects} ", "-H",
                  "Host: web", "-H", "Authorization: Bearer not.a.jwt", "http://" + gw + "/headers",
                  "http://" + gw + "/headers"},
                 Deadline(kTimeout));
    CHECK(c.out == "401:1 401:0 ");
  }
  {
    INFO("the gateway's rule: x-jwt kept (forward_original_token), the payload header set");
    std::string p = payload("issuer-ec", "any", 600, R"(,"groups":["a","b"])");
    std::string ec = keys.token("ec.pem", "ES256", "e1", p);
    HttpResponse r = get(gw, "/headers", "x-jwt: " + ec + "\r\nx-jwt-payload: forged\r\n");
    CHECK(r.status == 200);
    CHECK(has(r.body, ec));
    CHECK_FALSE(has(r.body, "forged"));
    std::string p64 = ec.substr(ec.find('.') + 1, ec.rfind('.') - ec.find('.') - 1);
    CHECK(has(r.body, "[\"x-jwt-payload\",\"" + p64 + "\"]"));
    // A payload header sent without any token is dropped too.
    r = get(gw, "/headers", "x-jwt-payload: forged\r\n");
    CHECK(r.status == 200);
    CHECK_FALSE(has(r.body, "forged"));
    // An ES256 token signed by another EC key fails at the gateway.
    shell(dir,
          "cd " + dir.path() + " && openssl ecparam -name prime256v1 -genkey -noout -out ec2.pem");
    r = get(gw, "/headers", "x-jwt: " + keys.token("ec2.pem", "ES256", "e1", p) + "\r\n");
    CHECK(r.status == 401);
    CHECK(r.body == "Jwt verification fails");
  }
  {
    INFO("file:// keys are re-read when the file changes (key rotation)");
    std::string rotated = keys.token("rsa2.pem", "RS256", "k2", payload("issuer-rsa", "web", 600));
    CHECK(get(gw, "/headers", bearer(rotated)).status == 401);
    shell(dir,
          "cd " + dir.path() +
              " && python3 jwt.py jwks k2:RSA:rsa2.pem > new.json && mv new.json rsa-jwks.json");
    CHECK(eventually([&] { return get(gw, "/headers", bearer(rotated)).status == 200; }, kTimeout));
    CHECK(get(gw, "/headers", bearer(good)).status == 401);  // k1 is gone
  }
  {
    INFO("authorization_policy request_principals = [\"*\"]: a token becomes required");
    std::ofstream(dir.file("authz.toml"))
        << "[[authorization_policy]]\nname = \"need-jwt\"\n"
        << "selector = { match_labels = { app = \"web\" } }\n"
        << "rules = [{ from = [{ source = { request_principals = [\"*\"] } }] }]\n";
    RunResult a = mesh.cli({"apply", "-f", dir.file("authz.toml")});
    REQUIRE_MESSAGE((a.status && a.status->ok()), a.out << a.err);
    CHECK(eventually([&] { return get(gw, "/headers").status == 403; }, kTimeout));
    CHECK(get(gw, "/headers").body == "RBAC: access denied");
    std::string t = keys.token("rsa2.pem", "RS256", "k2", payload("issuer-rsa", "web", 600));
    CHECK(get(gw, "/headers", bearer(t)).status == 200);
  }
}

}  // namespace meshbox::test
