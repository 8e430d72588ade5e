// The dashboard at GET /ui (and /ui/…): one HTML page, its CSS and JS inline, compiled into
// the binary; no outside assets. It polls the admin API every 2 s (/stats/edges, /services,
// /endpoints, /workloads, /routes, /config) and draws the mesh's call graph as SVG — workload
// nodes by app and version, layered left to right by call depth; edges with requests/s,
// error %, p99 and a lock for mTLS — and tables of services, endpoints, workloads, routes and
// policies. Edges and nodes carry data-* attributes for tests (docs/observability.md).
#pragma once

#include <string_view>

namespace meshbox::control {

/// The page (static storage).
std::string_view dashboard_html();

}  // namespace meshbox::control
