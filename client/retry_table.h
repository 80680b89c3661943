// Which calls the C++ SDK sends again after their answer was lost (UNAVAILABLE or
// DEADLINE_EXCEEDED once the request may have reached ckptd): docs/api.md's table
// "Retrying a write", RPC by RPC, the one the Python SDK (client/python/ckpt/retry.py)
// follows too. tests/client/retry_table_test.cc checks this table against the doc.
#ifndef CKPT_CLIENT_RETRY_TABLE_H_
#define CKPT_CLIENT_RETRY_TABLE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace ckpt {

// True if `request`, the request message of the RPC `method` ("LeaseItems"), may be sent
// again after its answer was lost: a repeat does no harm the doc does not accept. False
// for methods the table does not know. Thread-safe.
bool ResendAfterLostAnswer(absl::string_view method, const google::protobuf::Message& request);

// The methods the table has a rule for (every RPC of ckpt.v1.Checkpoint).
std::vector<std::string> RetryTableMethods();

}  // namespace ckpt

#endif  // CKPT_CLIENT_RETRY_TABLE_H_
