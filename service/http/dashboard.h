// The dashboard's files (service/http/dashboard/: index.html, app.js, app.css), built
// into ckptd by tools/build/embed_files.py and served at / and /static/. Nothing is
// read from disk or fetched at run time. The page itself holds no job data: it reads
// everything through /api/v1 with the caller's token, so it is served to anyone.
#ifndef CKPT_SERVICE_HTTP_DASHBOARD_H_
#define CKPT_SERVICE_HTTP_DASHBOARD_H_

#include <httplib.h>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ckpt {

struct EmbeddedFile {
  absl::string_view path;          // "/" or "/static/app.js"
  absl::string_view content_type;  // "text/javascript; charset=utf-8"
  absl::string_view etag;          // quoted, from the bytes
  absl::string_view body;
};

// Generated (dashboard_files.cc).
absl::Span<const EmbeddedFile> DashboardFiles();

// GET / and /static/...: the files, with an ETag (304 when it matches), no-cache (the
// next ckptd may ship others) and a Content-Security-Policy that allows nothing but
// this origin: no inline script, no other host.
void InstallDashboard(httplib::Server& server);

}  // namespace ckpt

#endif  // CKPT_SERVICE_HTTP_DASHBOARD_H_
