// A GET request's query parameters as fields of a protobuf request, so the gateway's
// read routes take the same field names as the JSON body of a POST (and as grpcurl):
//   ?status=JOB_STATUS_RUNNING&limit=20             scalar fields, by JSON or proto name
//   ?labels.team=search                             a map<string, string> entry
//   ?key.index=42  ?key.name=a%2Fb                  a field of a nested message
//   ?minInterval=0.5s                               a well-known type in its JSON form
// Repeated fields take one parameter per element. Booleans are true/false/1/0, enums
// their name or number.
//
// Thread-safe: pure function.
#ifndef CKPT_SERVICE_HTTP_QUERY_PARAMS_H_
#define CKPT_SERVICE_HTTP_QUERY_PARAMS_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace ckpt {

// Sets the fields of `message` named by `params` (name -> value, as cpp-httplib parses
// a query). INVALID_ARGUMENT naming the parameter for an unknown field or a value that
// does not fit its type; `message` may then be partly set.
absl::Status FillFromQuery(const std::multimap<std::string, std::string>& params,
                           google::protobuf::Message* message);

}  // namespace ckpt

#endif  // CKPT_SERVICE_HTTP_QUERY_PARAMS_H_
