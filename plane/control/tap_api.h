// The admin API's tap endpoints (`meshbox tap`, plane/tap.h):
//
//   GET /tap?service=S[&path=PREFIX][&method=M][&max=N]
//       200, a chunked stream of JSON lines (application/x-ndjson), one per matching request,
//       until the client disconnects or N lines were sent (then the stream ends). Opens a
//       session, which closes with the stream.
//   GET /tap/sessions
//       {"active": sessions open, "dropped": events over the workers' rate limit}
//
// Loop thread only (the control loop).
#pragma once

#include <string>

#include "plane/control/http_server.h"
#include "plane/tap.h"

namespace meshbox::control {

/// GET /tap. `tap` null (no workers in this process): 503.
void serve_tap(TapSource* tap, HttpRequest& req, Respond respond);
/// GET /tap/sessions.
HttpResponse tap_sessions(const TapSource* tap);
/// One event as a JSON object (no newline).
std::string tap_event_json(const TapEvent& e);

}  // namespace meshbox::control
