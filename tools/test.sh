#!/usr/bin/env bash
# Runs every ckpt test suite and ends with one summary line:
#
#   N passed, N failed[, N skipped]
#
# Exit code 0 only if nothing failed. CI runs this through .ci/run.
#
# Usage: tools/test.sh [--asan] [-- BAZEL_TEST_ARGS...]
#   --asan   run the Bazel suite under AddressSanitizer + UBSan (--config=asan)
#   -- ...   everything after -- is appended to `bazel test ... //...`, e.g.
#            tools/test.sh -- --test_filter='Keys*' --runs_per_test=3
#            tools/test.sh -- -- -//tests/server/...   (exclude a package)
#
# Suites: each suite is a function that runs its tests and then calls
#   add_results SUITE PASSED FAILED SKIPPED
# once. Adding a suite means writing its function and adding one line to main().
# Suites must not exit on an expected failure; anything unexpected aborts the
# script, and the EXIT trap still prints the summary, counting one more failure.
#
# Full logs stay in a temporary directory (printed at the end).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0
SUMMARY_PRINTED=0
LOG_DIR=""
ASAN=0
BAZEL_EXTRA_ARGS=()

usage() {
  cat <<'EOF_USAGE'
Usage: tools/test.sh [--asan] [-- BAZEL_TEST_ARGS...]
  --asan   run the Bazel suite under AddressSanitizer + UBSan (--config=asan)
  -- ...   everything after -- is appended to `bazel test ... //...`
Runs every test suite; the last line is "N passed, N failed[, N skipped]".
EOF_USAGE
}

# add_results SUITE PASSED FAILED SKIPPED: adds one suite's counts to the totals.
add_results() {
  local suite=$1 passed=$2 failed=$3 skipped=$4
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + skipped))
  echo "ckpt: suite $suite: $passed passed, $failed failed, $skipped skipped"
}

# count_bazel_log LOG: prints "PASSED FAILED SKIPPED", counted from the per-target
# summary lines `bazel test` prints at the end, e.g.
#   //tests/store:keys_test                      PASSED in 0.3s
#   //tests/store:keys_test             (cached) PASSED in 0.3s
#   //tests/rpc:server_test                      FAILED in 2 out of 3 in 1.2s
#   //tests/rpc:client_test (k8-fastbuild)       FAILED TO BUILD
# PASSED and FLAKY (passed on a retry) count as passed; SKIPPED (incompatible
# target) as skipped; FAILED, TIMEOUT, INCOMPLETE, REMOTE FAILURE, FAILED TO BUILD and
# NO STATUS (never ran) as failed. Bazel 4 prints at most five FAILED TO BUILD lines,
# so tests counted in "Executed X out of Y tests" but not listed are failures too.
# Only lines after the last "INFO: Elapsed time:" count (the whole log if there is
# none). Colour codes and carriage returns are removed first.
count_bazel_log() {
  local log=$1
  sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r$//' -e 's/.*\r//' "$log" | awk '
    BEGIN { passed = 0; failed = 0; skipped = 0; total = -1 }

    # Bazel prints "INFO: Elapsed time: ..." when the build and test run ends, just
    # before the summary. Restart counting there, so that lookalike lines in test
    # output streamed earlier (--test_output=errors) are not counted.
    /^INFO: Elapsed time: / { passed = 0; failed = 0; skipped = 0; total = -1; next }

    # "Executed 3 out of 12 tests: ..." (the last one wins).
    /^Executed [0-9]+ out of [0-9]+ tests?: / { total = $5 + 0; next }

    # A per-target line starts with a label, optionally followed by the
    # configuration in parentheses, then padding and an optional cache note.
    /^(@[^ \/]*)?\/\/[^ ]*:[^ ]+( \([^)]*\))? +/ {
      s = $0
      sub(/^[^ ]+( \([^)]*\))? +/, "", s)
      sub(/^\((cached|[0-9]+\/[0-9]+ cached)\) /, "", s)
      if (s ~ /^(PASSED|FLAKY)([ ,]|$)/) passed++
      else if (s ~ /^SKIPPED( |$)/) skipped++
      else if (s ~ /^(FAILED TO BUILD|FAILED|TIMEOUT|INCOMPLETE|REMOTE FAILURE|NO STATUS)([ ,]|$)/) failed++
    }

    END {
      if (total > passed + failed + skipped) failed += total - (passed + failed + skipped)
      print passed, failed, skipped
    }'
}

# Suite: every Bazel test target (bazel test //...).
suite_bazel() {
  local log="$LOG_DIR/bazel-test.log"
  local -a args
  # --keep_going: one target that fails to build does not hide the other results.
  # --test_summary=short --verbose_test_summary: one line per target, including
  # PASSED and FAILED TO BUILD ones (count_bazel_log relies on these).
  args=(test --keep_going --test_summary=short --verbose_test_summary)
  # Output always goes through tee, so Bazel's curses progress bar (cursor
  # movement) stays off to keep the log readable; colour only on a terminal and
  # outside CI.
  if [[ -z "${CI:-}" && -t 1 ]]; then
    args+=(--color=yes --curses=no)
  else
    args+=(--color=no --curses=no)
  fi
  if (( ASAN )); then
    args+=(--config=asan)
  fi
  args+=(//... "${BAZEL_EXTRA_ARGS[@]}")

  echo "ckpt: bazel ${args[*]}"
  # tee ignores Ctrl-C so it keeps logging while Bazel shuts down its own way
  # (exit code 8); pipefail makes rc Bazel's exit code.
  local rc=0
  bazel "${args[@]}" 2>&1 | (trap '' INT; exec tee "$log") || rc=$?

  local passed failed skipped
  read -r passed failed skipped < <(count_bazel_log "$log")

  # A non-zero exit from Bazel is always at least one failure, even when no test
  # target reported one (e.g. a non-test target failed to build).
  if (( rc != 0 && failed == 0 )); then
    case $rc in
      1) echo "ckpt: bazel: build failed" ;;
      3) echo "ckpt: bazel: tests failed but no failing target was found in the summary" ;;
      4) echo "ckpt: bazel: no test targets were found" ;;
      8) echo "ckpt: bazel: interrupted" ;;
      *) echo "ckpt: bazel: exited with code $rc" ;;
    esac
    failed=1
  fi
  # Success with nothing counted means the summary could not be read: do not
  # report that as a pass.
  if (( rc == 0 && passed + failed + skipped == 0 )); then
    echo "ckpt: bazel: no test results found in $log"
    failed=1
  fi
  add_results bazel "$passed" "$failed" "$skipped"
}

print_summary() {
  SUMMARY_PRINTED=1
  if [[ -n "$LOG_DIR" ]]; then
    echo "ckpt: logs in $LOG_DIR"
  fi
  if (( TOTAL_SKIPPED > 0 )); then
    echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
  else
    echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
  fi
}

# If the script dies before main() prints the summary, still end with one, counting
# the abort as a failure, and exit non-zero.
on_exit() {
  local rc=$?
  if (( ! SUMMARY_PRINTED )); then
    echo "ckpt: tools/test.sh aborted (exit code $rc)"
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    print_summary
    (( rc != 0 )) || rc=1
    exit "$rc"
  fi
}

main() {
  while (( $# > 0 )); do
    case "$1" in
      --asan) ASAN=1 ;;
      --) shift; BAZEL_EXTRA_ARGS=("$@"); break ;;
      -h | --help) usage; exit 0 ;;
      *) echo "ckpt: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
  done

  trap on_exit EXIT
  cd "$REPO_ROOT"
  # shellcheck source=tools/install_deps.sh
  source "$REPO_ROOT/tools/install_deps.sh"
  ckpt_install_deps

  LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ckpt-test.XXXXXX")"

  # The suites, in order. Each adds its counts to the totals.
  suite_bazel

  print_summary
  if (( TOTAL_FAILED > 0 )); then
    exit 1
  fi
  exit 0
}

# Sourcing the file (e.g. to try count_bazel_log on a saved log) runs nothing.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
