#!/usr/bin/env bash
# Runs every ckpt test suite and ends with one summary line:
#
#   N passed, N failed[, N skipped]
#
# Exit code 0 only if nothing failed. CI runs this through .ci/run.
#
# Usage: tools/test.sh [--asan] [--long] [--fuzz_seconds=N] [-- BAZEL_TEST_ARGS...]
#   --asan   run the Bazel suite under AddressSanitizer + UBSan (--config=asan)
#   --long   also the long forms: 50 crash rounds per sync mode
#            (//tests/durability:crash_long_test), 10 minutes of fuzzing, and the
#            fault suite over 300 000 items with 3 rounds of faults
#   --fuzz_seconds=N   how long the fuzz suite runs (default 60; --long: 600)
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
LONG=0
FUZZ_SECONDS=""
BAZEL_EXTRA_ARGS=()

usage() {
  cat <<'EOF_USAGE'
Usage: tools/test.sh [--asan] [--long] [--fuzz_seconds=N] [-- BAZEL_TEST_ARGS...]
  --asan   run the Bazel suite under AddressSanitizer + UBSan (--config=asan)
  --long   also 50 crash rounds per sync mode, 10 minutes of fuzzing, and 3 rounds
           of the cluster's fault suite
  --fuzz_seconds=N   how long the fuzz suite runs (default 60; --long: 600)
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
  # Test cases that skipped themselves (e.g. the disk-full test without a tmpfs) pass
  # their target; they are counted as skipped here, with their reasons above.
  local testlogs gtest_skipped=0
  local -a info_args=()
  if (( ASAN )); then
    info_args+=(--config=asan)
  fi
  testlogs="$(bazel info "${info_args[@]}" bazel-testlogs 2>/dev/null || true)"
  if [[ -n "$testlogs" ]]; then
    gtest_skipped=$(count_gtest_skips "$testlogs")
  fi
  if (( gtest_skipped > 0 )); then
    echo "ckpt: bazel: $gtest_skipped test case(s) skipped inside passing targets (see above)"
    skipped=$((skipped + gtest_skipped))
  fi

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

# count_gtest_skips TESTLOGS_DIR: prints the number of GoogleTest cases that skipped
# themselves (GTEST_SKIP) inside targets Bazel reports as PASSED, and lists each with
# its reason on stderr. Each test.log ends with gtest's "[  SKIPPED ] N tests, listed
# below:" when any did.
count_gtest_skips() {
  local dir=$1 total=0 log n
  [[ -d "$dir" ]] || { echo 0; return; }
  while IFS= read -r -d '' log; do
    n=$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) tests\{0,1\}, listed below:.*/\1/p' "$log" | tail -1)
    if [[ -n "$n" ]]; then
      total=$((total + n))
      {
        echo "ckpt: ${log#"$dir"/}: $n test case(s) skipped:"
        grep -h -B1 '^\[  SKIPPED \] [A-Za-z]' "$log" | grep -v -e '^\[  SKIPPED \]' -e '^--$' \
          | sed 's/^/ckpt:     /' | sort -u
      } >&2
    fi
  done < <(find -L "$dir" -name test.log -print0 2>/dev/null)
  echo "$total"
}

# Suite: the libFuzzer target over the request handlers, built with clang
# (--config=fuzz), for FUZZ_SECONDS. Passes when the fuzzer ends without a crash, a
# sanitizer report or a broken rule; a crashing input is left in the log directory.
suite_fuzz() {
  local log="$LOG_DIR/fuzz.log" work="$LOG_DIR/fuzz"
  local seconds=${FUZZ_SECONDS:-$(( LONG ? 600 : 60 ))}
  local -a args=(build --config=fuzz --color=no --curses=no //tests/fuzz:request_fuzzer)
  echo "ckpt: bazel ${args[*]}"
  local rc=0
  bazel "${args[@]}" >"$log" 2>&1 || rc=$?
  if (( rc != 0 )); then
    tail -20 "$log"
    echo "ckpt: fuzz: the fuzzer did not build (log: $log)"
    add_results fuzz 0 1 0
    return
  fi
  local bin
  bin="$(bazel info --config=fuzz bazel-bin 2>/dev/null)/tests/fuzz/request_fuzzer"
  mkdir -p "$work/corpus" "$work/tmp"
  echo "ckpt: fuzz: request_fuzzer for ${seconds}s (log: $log)"
  rc=0
  (cd "$work" && TEST_TMPDIR="$work/tmp" "$bin" -max_total_time="$seconds" \
     -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" \
     "$REPO_ROOT/tests/fuzz/corpus") >>"$log" 2>&1 || rc=$?
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" \
    | sed 's/^/ckpt: fuzz: /' || true
  if (( rc == 0 )); then
    add_results fuzz 1 0 0
  else
    grep -E 'ERROR: (libFuzzer|AddressSanitizer)|runtime error|rule broken|Test unit written' \
      "$log" | head -5 || true
    echo "ckpt: fuzz: exit code $rc; inputs in $work"
    add_results fuzz 0 1 0
  fi
}

# Suite: no test token in any log the run wrote. Every bearer token the tests make
# starts with ckpt-test-secret- (tests/testing/test_credentials.h, the Python SDK's
# security_test), so one that reached a test's output (ckptd's stderr and the CLI's
# included, which the tests pass through) shows up here. Reads the test logs and XML
# reports under bazel-testlogs, and this run's own logs.
suite_secrets() {
  local -a info_args=()
  if (( ASAN )); then
    info_args+=(--config=asan)
  fi
  local testlogs
  testlogs="$(bazel info "${info_args[@]}" bazel-testlogs 2>/dev/null || true)"
  if [[ -z "$testlogs" || ! -d "$testlogs" ]]; then
    echo "ckpt: secrets: no bazel-testlogs to read"
    add_results secrets 0 1 0
    return
  fi
  local leaks
  leaks="$(grep -rl -e 'ckpt-test-secret-' --include=test.log --include=test.xml \
             "$testlogs/" "$LOG_DIR/" 2>/dev/null || true)"
  if [[ -n "$leaks" ]]; then
    echo "ckpt: secrets: a test token is in:"
    sed 's/^/ckpt:     /' <<<"$leaks"
    add_results secrets 0 1 0
  else
    echo "ckpt: secrets: no test token in $(find -L "$testlogs" -name test.log | wc -l) test logs"
    add_results secrets 1 0 0
  fi
}

# Suite: clang's thread-safety analysis (--config=tsa) over every production target: a
# member read or written without the mutex its ABSL_GUARDED_BY names, or a helper called
# without the lock its ABSL_EXCLUSIVE_LOCKS_REQUIRED asks for, fails the build.
suite_tsa() {
  local log="$LOG_DIR/tsa.log"
  local -a args=(build --config=tsa --keep_going --color=no --curses=no
    //service/... //client/... //tools/...)
  echo "ckpt: bazel ${args[*]}"
  if bazel "${args[@]}" >"$log" 2>&1; then
    add_results tsa 1 0 0
  else
    grep -E 'error:' "$log" | sort -u | head -20 || true
    echo "ckpt: tsa: the thread-safety build failed (log: $log)"
    add_results tsa 0 1 0
  fi
}

# Suite: the dashboard in a real browser (tests/web/dashboard.test.mjs): headless Debian
# chromium driven by playwright-core (pinned by tests/web/package-lock.json; npm ci puts it
# in tests/web/node_modules, git-ignored), against a real ckptd whose job Python SDK
# workers work. Counts come from node's test runner ("# pass N", "# fail N"); its
# screenshots stay in the log directory (web/).
suite_web() {
  local log="$LOG_DIR/web.log" out="$LOG_DIR/web"
  mkdir -p "$out"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "ckpt: web: node (>= 20) and npm are needed for the browser test; none found"
    add_results web 0 1 0
    return
  fi
  echo "ckpt: web: npm ci (tests/web), bazel build ckptd and the SDK workers"
  local rc=0
  (cd tests/web && npm ci --no-audit --no-fund) >"$log" 2>&1 || rc=$?
  if (( rc == 0 )); then
    bazel build --color=no --curses=no //service/server:ckptd //tests/web:dashboard_fixture \
      >>"$log" 2>&1 || rc=$?
  fi
  if (( rc != 0 )); then
    tail -20 "$log"
    echo "ckpt: web: could not install or build what the browser test needs (log: $log)"
    add_results web 0 1 0
    return
  fi
  local bin
  bin="$(bazel info bazel-bin 2>/dev/null)"
  echo "ckpt: web: node --test tests/web/dashboard.test.mjs (screenshots in $out)"
  CKPTD="$bin/service/server/ckptd" FIXTURE="$bin/tests/web/dashboard_fixture" \
    CKPT_WEB_OUT="$out" node --test --test-reporter=tap tests/web/dashboard.test.mjs \
    2>&1 | (trap '' INT; exec tee -a "$log") || rc=$?
  local passed failed skipped
  passed=$(sed -n 's/^# pass \([0-9][0-9]*\)$/\1/p' "$log" | tail -1)
  failed=$(sed -n 's/^# fail \([0-9][0-9]*\)$/\1/p' "$log" | tail -1)
  skipped=$(sed -n 's/^# skipped \([0-9][0-9]*\)$/\1/p' "$log" | tail -1)
  passed=${passed:-0} failed=${failed:-0} skipped=${skipped:-0}
  # A run that ended badly without a failing test (a crash in a hook) still fails.
  if (( rc != 0 && failed == 0 )); then failed=1; fi
  if (( passed + failed + skipped == 0 )); then failed=1; fi
  add_results web "$passed" "$failed" "$skipped"
}

# Suite: the fault suite (tests/cluster/fault_suite.py) on the real 3-replica cluster
# of tools/cluster/cluster.sh (3 etcd, 3 PostgreSQL under Patroni, 3 ckptd): 8 Python
# SDK workers run a job of 30 000 items (--long: 300 000, 3 rounds of faults) while the
# PostgreSQL primary and the shard's ckptd are killed with -9, a ckptd is frozen past
# its lease and continued, and the killed ones restart. Prints the time from each fault
# to the next completion; passes when the workers finished the job by themselves and
# nothing acknowledged was lost, doubled or miscounted. Its logs go to faults/.
suite_faults() {
  local log="$LOG_DIR/faults.log" out="$LOG_DIR/faults"
  local -a args=(build --color=no --curses=no //service/server:ckptd //tests/cluster:fault_suite)
  echo "ckpt: bazel ${args[*]}"
  if ! bazel "${args[@]}" >"$log" 2>&1; then
    tail -20 "$log"
    echo "ckpt: faults: the suite did not build (log: $log)"
    add_results faults 0 1 0
    return
  fi
  local bin rc=0
  bin="$(bazel info bazel-bin 2>/dev/null)"
  local -a suite=("$bin/tests/cluster/fault_suite" "--cluster_script=$REPO_ROOT/tools/cluster/cluster.sh"
    "--ckptd=$bin/service/server/ckptd" "--out=$out")
  if (( LONG )); then
    suite+=(--long)
  fi
  echo "ckpt: faults: ${suite[*]}"
  # The suite stops everything it starts, however it ends (its own finally); tee ignores
  # Ctrl-C so that its last words are logged.
  "${suite[@]}" 2>&1 | (trap '' INT; exec tee -a "$log") | grep -E '^faults: ' || rc=$?
  if grep -q '^faults: PASSED' "$log"; then
    add_results faults 1 0 0
  else
    echo "ckpt: faults: failed (log: $log, the cluster's logs in $out/cluster-logs)"
    add_results faults 0 1 0
  fi
}

# Suite (--long only): the long forms of the durability tests.
suite_long() {
  local log="$LOG_DIR/long.log"
  local -a args=(test --keep_going --test_summary=short --verbose_test_summary
    --color=no --curses=no //tests/durability:crash_long_test)
  if (( ASAN )); then
    args+=(--config=asan)
  fi
  echo "ckpt: bazel ${args[*]}"
  local rc=0
  bazel "${args[@]}" 2>&1 | (trap '' INT; exec tee "$log") || rc=$?
  local passed failed skipped
  read -r passed failed skipped < <(count_bazel_log "$log")
  if (( rc != 0 && failed == 0 )); then
    failed=1
  fi
  add_results long "$passed" "$failed" "$skipped"
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
      --long) LONG=1 ;;
      --fuzz_seconds=*)
        FUZZ_SECONDS="${1#*=}"
        [[ "$FUZZ_SECONDS" =~ ^[1-9][0-9]*$ ]] || { echo "ckpt: --fuzz_seconds needs a number of seconds" >&2; exit 2; } ;;
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
  suite_web
  suite_secrets
  suite_tsa
  suite_fuzz
  suite_faults
  if (( LONG )); then
    suite_long
  fi

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
