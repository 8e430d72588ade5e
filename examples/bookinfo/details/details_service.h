// DetailsService: Bookinfo's details service. GET /details/<id> answers the book's details
// as JSON (the same fields, values and order as Istio's details v1), GET /health its health.
// It calls nobody. Loop thread only.
#pragma once

#include "examples/bookinfo/common/service.h"

namespace meshbox::bookinfo {

class DetailsService : public Service {
 public:
  void handle(Request& req, Reply reply) override;
};

/// The details JSON for product `id`.
std::string details_json(int64_t id);

}  // namespace meshbox::bookinfo
