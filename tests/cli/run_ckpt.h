#ifndef CKPT_TESTS_CLI_RUN_CKPT_H_
#define CKPT_TESTS_CLI_RUN_CKPT_H_

#include <string>

namespace ckpt {
namespace testutil {

// What the ckpt binary did: its exit code (-1 if it did not exit) and everything it
// wrote to stdout and stderr.
struct CkptOutcome {
  int exit_code;
  std::string output;
};

// Runs the ckpt binary (a data dependency: //tools/cli:ckpt) with `args`, a shell-quoted
// argument string, and waits for it.
CkptOutcome RunCkptBinary(const std::string& args);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_CLI_RUN_CKPT_H_
