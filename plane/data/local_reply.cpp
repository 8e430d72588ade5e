#include "plane/data/local_reply.h"

#include <charconv>

#include "core/http/serializer.h"

namespace meshbox::data {

std::string_view flag_name(ResponseFlag flag) {
  switch (flag) {
    case ResponseFlag::None:
      return "-";
    case ResponseFlag::DownstreamProtocolError:
      return "DPE";
    case ResponseFlag::UpstreamConnectFailure:
      return "UF";
    case ResponseFlag::UpstreamConnectionTermination:
      return "UC";
    case ResponseFlag::UpstreamRequestTimeout:
      return "UT";
    case ResponseFlag::UpstreamProtocolError:
      return "UPE";
    case ResponseFlag::NoHealthyUpstream:
      return "UH";
    case ResponseFlag::StreamIdleTimeout:
      return "SI";
    case ResponseFlag::DownstreamConnectionTermination:
      return "DC";
    case ResponseFlag::Overflow:
      return "UO";
    case ResponseFlag::NoRouteFound:
      return "NR";
    case ResponseFlag::NoClusterFound:
      return "NC";
    case ResponseFlag::DelayInjected:
      return "DI";
    case ResponseFlag::FaultInjected:
      return "FI";
    case ResponseFlag::DnsResolutionFailure:
      return "DF";
    case ResponseFlag::RateLimited:
      return "RL";
  }
  return "-";
}

LocalReply local_reply_for(const ProxyError& e) {
  switch (e.flag) {
    case ResponseFlag::UpstreamConnectFailure:
      return {503,
              "upstream connect error or disconnect/reset before headers. reset reason: connection "
              "failure\n"};
    case ResponseFlag::UpstreamConnectionTermination:
      return {503,
              "upstream connect error or disconnect/reset before headers. reset reason: connection "
              "termination\n"};
    case ResponseFlag::UpstreamRequestTimeout:
      return {504, "upstream request timeout\n"};
    case ResponseFlag::UpstreamProtocolError:
      return {502, "upstream sent an invalid response\n"};
    case ResponseFlag::NoHealthyUpstream:
      return {503, "no healthy upstream\n"};
    case ResponseFlag::StreamIdleTimeout:
      return {408, "stream timeout\n"};
    case ResponseFlag::Overflow:
      return {503, "upstream connection limit reached\n"};
    case ResponseFlag::NoRouteFound:
      return {404, "no route\n"};
    case ResponseFlag::NoClusterFound:
      return {503, "no cluster\n"};
    case ResponseFlag::DnsResolutionFailure:
      return {503, "dns resolution failure\n"};
    default:
      return {500, "internal error\n"};
  }
}

LocalReply fault_abort_reply(int status) {
  return {status, "fault filter abort\n"};
}

void append_local_reply(int status, std::string_view body, bool close, std::string& out,
                        std::string_view extra_headers) {
  out.append("HTTP/1.1 ");
  char num[24];
  auto end = std::to_chars(num, num + sizeof num, status).ptr;
  out.append(num, end);
  out.push_back(' ');
  out.append(http::reason_phrase(status));
  out.append("\r\ncontent-type: text/plain\r\ncontent-length: ");
  end = std::to_chars(num, num + sizeof num, body.size()).ptr;
  out.append(num, end);
  out.append("\r\n");
  out.append(extra_headers);
  out.append(close ? "connection: close\r\n\r\n" : "\r\n");
  out.append(body);
}

}  // namespace meshbox::data
