#!/bin/sh
# Runs one fuzz target's already-built binary (see README.md: build first), niced, one job,
# corpus in fuzz/corpus/TARGET (new inputs) + fuzz/seeds/TARGET (committed seeds), crashes in
# fuzz/artifacts/TARGET/. Usage: fuzz/run.sh TARGET SECONDS [extra libFuzzer flags]
# Equivalent to `cargo fuzz run -O [--features …] TARGET fuzz/corpus/TARGET fuzz/seeds/TARGET -- …`
# without the rebuild check (so it can run while another build is going).
set -eu
cd "$(dirname "$0")"
t=$1; secs=$2; shift 2
case $t in
  onnx_import) bin=target-nosan/x86_64-unknown-linux-gnu/release/$t; max_len=262144 ;;
  resq_model) bin=target/x86_64-unknown-linux-gnu/release/$t; max_len=131072 ;;
  bundle_reader) bin=target/x86_64-unknown-linux-gnu/release/$t; max_len=131072 ;;
  *) bin=target/x86_64-unknown-linux-gnu/release/$t; max_len=16384 ;;
esac
mkdir -p corpus/$t artifacts/$t
# Panics print their backtrace, but anyhow (tract, resq-host) would capture one for every
# error it creates when RUST_BACKTRACE is set: slow, and no use here.
export RUST_LIB_BACKTRACE=0
exec nice -n 19 "$bin" -artifact_prefix=artifacts/$t/ -max_len=$max_len -timeout=30 \
  -max_total_time="$secs" -print_final_stats=1 "$@" corpus/$t seeds/$t
