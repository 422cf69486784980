#!/usr/bin/env bash
# Passthrough overhead of OtpLayer, robust to machine drift: ROUNDS short
# criterion runs, each measuring the bare router and the wrapped one back to
# back; prints each run's medians and ratio, then the median ratio.
#
#   benches/passthrough_ratio.sh            # ROUNDS=7 by default
#   GROUP=passthrough_browser_headers benches/passthrough_ratio.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-7}
group=${GROUP:-passthrough}
cargo bench --all-features --bench layer --no-run 2>/dev/null
median_ns() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' \
    "target/criterion/$group/$1/new/estimates.json"
}
ratios=()
for i in $(seq "$rounds"); do
  cargo bench --all-features --bench layer -- --warm-up-time 1 --measurement-time 3 \
    "^$group/(bare_router|wrapped_in_otp_layer)\$" > /dev/null 2>&1
  bare=$(median_ns bare_router)
  wrapped=$(median_ns wrapped_in_otp_layer)
  ratio=$(python3 -c "print(f'{$wrapped / $bare:.4f}')")
  ratios+=("$ratio")
  printf 'run %d: bare %.1f ns, wrapped %.1f ns, +%.1f ns, ratio %s\n' \
    "$i" "$bare" "$wrapped" "$(python3 -c "print($wrapped - $bare)")" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median ratio over %d runs: %s\n", NR, a[int((NR+1)/2)]}'
