#!/usr/bin/env bash
# The app's CPU per hash-free request (a verify for a contact with no
# pending code) on the memory store and on Redis (issue 21.1): ROUNDS
# rounds of memory, Redis, then `redis-benchmark` EVALSHA at the same
# concurrency (the ceiling). Each line reads the release quickstart's
# utime/stime (/proc/<pid>/stat), write syscalls (/proc/<pid>/io) and its
# threads' context switches around a 10 s `wrk -t2 -c16` run, divided by
# the requests served. Needs wrk, curl and redis-benchmark.
#
#   benches/cpu_per_request.sh                       # ROUNDS=3, redis://127.0.0.1:6379
#   REDIS_URL=unix:///tmp/redis.sock benches/cpu_per_request.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
port=${PORT:-3778}
cargo build --release --all-features --example quickstart --quiet
bin=target/release/examples/quickstart
wrk_run() {
  wrk -t2 -c16 -d"$1" -s benches/verify_no_code.lua "http://127.0.0.1:$port/verify-otp/"
}
counters() { # utime stime writes context-switches
  local pid=$1
  echo "$(awk '{print $14, $15}' "/proc/$pid/stat")" \
    "$(awk '/syscw/{print $2}' "/proc/$pid/io")" \
    "$(cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/{s += $2} END {print s}')"
}
measure() { # label [REDIS_OTP_URL]
  env OTP_IP_SEND_PER_MINUTE=0 OTP_IP_VERIFY_PER_MINUTE=0 OTP_FAILURE_BUDGET=0 RUST_LOG=error \
    PORT="$port" ${2:+REDIS_OTP_URL=$2} "$bin" > /dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  wrk_run 2s > /dev/null
  read -r u0 s0 w0 c0 < <(counters "$pid")
  local out; out=$(wrk_run 10s)
  read -r u1 s1 w1 c1 < <(counters "$pid")
  kill "$pid"; wait "$pid" 2> /dev/null || true
  local n rps; n=$(awk '/requests in/{print $1}' <<< "$out"); rps=$(awk '/Requests\/sec/{print $2}' <<< "$out")
  awk -v l="$1" -v n="$n" -v r="$rps" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v w=$((w1 - w0)) \
    -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" 'BEGIN {
      printf "%-7s %9s req/s  user %5.1f us  sys %5.1f us  total %5.1f us  writes %.2f  ctxsw %.2f per request\n",
        l, r, u / t / n * 1e6, s / t / n * 1e6, (u + s) / t / n * 1e6, w / n, c / n }'
}
for i in $(seq "$rounds"); do
  echo "round $i"
  measure memory
  measure redis "$redis_url"
  if [[ $redis_url == redis://* ]]; then
    hostport=${redis_url#redis://}; hostport=${hostport%%/*}
    sha=$(redis-cli -h "${hostport%:*}" -p "${hostport##*:}" SCRIPT LOAD "return redis.call('PTTL', KEYS[1])")
    redis-benchmark -h "${hostport%:*}" -p "${hostport##*:}" -q -c 16 -n 300000 \
      EVALSHA "$sha" 1 'otp:{x}:code' | tr '\r' '\n' | grep 'requests per second' | sed 's/^/ceiling /'
  fi
done
