#!/usr/bin/env bash
# Passthrough overhead of OtpLayer, robust to machine drift: ROUNDS short
# criterion runs of the bare router and of the wrapped one, back to back,
# in alternating order (bare first in odd rounds, wrapped first in even
# ones); prints each round's medians and ratio, then the median ratio.
#
#   benches/passthrough_ratio.sh            # ROUNDS=7 by default
#   GROUP=passthrough_browser_headers benches/passthrough_ratio.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-7}
group=${GROUP:-passthrough}
cargo bench --all-features --bench layer --no-run --quiet
bench() {
  cargo bench --all-features --bench layer --quiet -- --warm-up-time 1 --measurement-time 3 \
    "^$group/$1\$" > /dev/null 2>&1 ||
    { echo "benchmark $group/$1 failed; run it alone to see why" >&2; exit 1; }
}
median_ns() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' \
    "target/criterion/$group/$1/new/estimates.json"
}
ratios=()
for i in $(seq "$rounds"); do
  if (( i % 2 )); then bench bare_router; bench wrapped_in_otp_layer
  else bench wrapped_in_otp_layer; bench bare_router; fi
  bare=$(median_ns bare_router)
  wrapped=$(median_ns wrapped_in_otp_layer)
  read -r ratio diff < <(python3 -c "print(f'{$wrapped / $bare:.4f} {$wrapped - $bare:+.1f}')")
  ratios+=("$ratio")
  printf 'round %d: bare %.1f ns, wrapped %.1f ns, %s ns, ratio %s\n' \
    "$i" "$bare" "$wrapped" "$diff" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n |
  awk '{a[NR]=$1} END {printf "median ratio over %d rounds: %s\n", NR, a[int((NR+1)/2)]}'
