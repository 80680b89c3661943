#include "service/http/dashboard.h"

#include <string>

namespace ckpt {
namespace {

constexpr char kPolicy[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

void Serve(const EmbeddedFile& file, const httplib::Request& request, httplib::Response& response) {
  response.set_header("Cache-Control", "no-cache");
  response.set_header("ETag", std::string(file.etag));
  response.set_header("Content-Security-Policy", kPolicy);
  response.set_header("X-Content-Type-Options", "nosniff");
  response.set_header("Referrer-Policy", "no-referrer");
  if (request.get_header_value("If-None-Match") == file.etag) {
    response.status = 304;
    return;
  }
  response.set_content(file.body.data(), file.body.size(), std::string(file.content_type));
}

}  // namespace

void InstallDashboard(httplib::Server& server) {
  for (const EmbeddedFile& file : DashboardFiles()) {
    server.Get(std::string(file.path),
               [&file](const httplib::Request& request, httplib::Response& response) {
                 Serve(file, request, response);
               });
  }
}

}  // namespace ckpt
