#!/usr/bin/env bash
# The fuzz pass's judge (jobs/fuzz.sh --classify) on saved sanitizer reports
# (tests/fuzz/reports/<verdict>-<what>.txt): a SEGV that ASan reports inside
# glibc's memcpy called from libhdf5 is a known libhdf5 defect (CI once failed
# on it), an overflow in the project's code or of a buffer the project handed
# to libhdf5 is a failure, and so is any UBSan report.
source "$(dirname "$0")/lib.sh"
count=0
for report in "$SRC"/tests/fuzz/reports/*.txt; do
  name=$(basename "$report" .txt)
  want=${name%%-*}
  got=$("$SRC/jobs/fuzz.sh" --classify "$report")
  count=$((count + 1))
  if [ "$(cut -f1 <<<"$got")" = "$want" ]; then pass "$name: $got"
  else fail "$name: judged '$got', expected '$want'"; fi
done
[ "$count" -ge 6 ] || fail "only $count reports in tests/fuzz/reports"
# the known defect names where it is, without the run's addresses
got=$("$SRC/jobs/fuzz.sh" --classify "$SRC/tests/fuzz/reports/known-segv-glibc-memcpy-in-hdf5.txt")
[ "$(cut -f2 <<<"$got")" = "AddressSanitizer: SEGV in  libhdf5_serial.so.103+0x190f18" ] &&
  pass "known defect located: $(cut -f2 <<<"$got")" || fail "known defect located as '$(cut -f2 <<<"$got")'"
finish
