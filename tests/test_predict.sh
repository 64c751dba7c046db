#!/usr/bin/env bash
# unet-predict on a user's photos: --original-size gives masks and overlays at each photo's
# own size; folders and --list take many images, in batches with a progress line; under
# mpirun the batches are spread over the ranks with the very same results.
source "$(dirname "$0")/lib.sh"

png_size() { # WxH of a PNG, from its IHDR (bytes 16..23, big-endian)
  od -An -tu1 -j16 -N8 "$1" | awk '{printf "%dx%d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}'
}

make_data data 32 32 8 1
"$BUILD/unet-train" --data data --out run --epochs 1 --batch 8 --threads 1 --quiet
W=run/last.ckpt.h5
# photos of random sizes (180..320 on each side) as unet-synth makes them
"$BUILD/unet-synth" --out photos --count 7 --seed 3 > /dev/null 2>&1
mkdir -p sizes
for f in photos/annotations/trimaps/*.png; do echo "$(basename "$f" .png) $(png_size "$f")"; done > sizes/want.txt

# ---- --original-size: every output at its photo's size ---------------------------------
"$BUILD/unet-predict" --weights $W --out orig --original-size photos/images --threads 1 2> err.txt \
  || fail "predict --original-size: $(cat err.txt)"
bad=0
while read -r stem size; do
  for kind in mask overlay; do
    got=$(png_size "orig/${stem}_$kind.png")
    [ "$got" = "$size" ] || { fail "$stem $kind is $got, the photo $size"; bad=1; }
  done
done < sizes/want.txt
[ $bad = 0 ] && pass "--original-size: 7 masks and 7 overlays at their photos' sizes ($(cut -d' ' -f2 sizes/want.txt | sort -u | head -3 | tr '\n' ' ')...)"
grep -q "each photo's own size" err.txt && pass "summary: $(grep wrote err.txt)" || fail "summary: $(cat err.txt)"
# a photo already at the model size: --original-size changes nothing, byte for byte
"$BUILD/unet-synth" --out same --count 2 --size 32 --seed 4 > /dev/null 2>&1
"$BUILD/unet-predict" --weights $W --out same-model same/images --threads 1 2> /dev/null
"$BUILD/unet-predict" --weights $W --out same-orig same/images --original-size --threads 1 2> /dev/null
cmp -s same-model/synth_00001_mask.png same-orig/synth_00001_mask.png && cmp -s same-model/synth_00002_overlay.png same-orig/synth_00002_overlay.png \
  && pass "--original-size at the model size = the model-size output" || fail "--original-size at the model size differs"
# the default stays the model size (32x32 here, from the weights file)
"$BUILD/unet-predict" --weights $W --out model photos/images --threads 1 2> /dev/null
[ "$(png_size model/synth_00003_mask.png)" = 32x32 ] && pass "default: masks at the model size 32x32" \
  || fail "default mask size $(png_size model/synth_00003_mask.png)"

# ---- many images: folders, --list, batches, progress ------------------------------------
mkdir extra && cp same/images/synth_00001.jpg extra/other.jpg
ls photos/images/*.jpg | head -4 > list.txt
printf '# a comment\n\n  extra/other.jpg\n' >> list.txt
"$BUILD/unet-predict" --weights $W --out many --list list.txt --batch 2 --threads 1 2> err.txt \
  && [ "$(ls many/*_mask.png | wc -l)" -eq 5 ] && pass "--list: 5 images (comments and blank lines skipped)" \
  || fail "--list: $(ls many) $(cat err.txt)"
grep -q "unet-predict: images 5/5" err.txt && pass "progress line: $(grep 'images 5/5' err.txt | tail -1 | tr -d '\r')" \
  || fail "no progress line: $(cat err.txt)"
same=1
for f in photos/images/synth_0000[1-4].jpg; do
  s=$(basename "$f" .jpg)
  cmp -s "many/${s}_mask.png" "model/${s}_mask.png" || { fail "--list batch 2: $s differs from the folder run"; same=0; }
done
[ $same = 1 ] && pass "--list in batches of 2 = a folder in batches of 8, byte for byte"
echo "nowhere/x.jpg" > badlist.txt
if "$BUILD/unet-predict" --weights $W --out bl --list badlist.txt 2> err.txt; then fail "a missing listed file was accepted"
else grep -q "nowhere/x.jpg: cannot open" err.txt && [ ! -e bl ] && pass "a missing listed file: $(grep error err.txt | head -1)" || fail "missing listed file: $(cat err.txt)"; fi
: > empty.txt
rc=0; "$BUILD/unet-predict" --weights $W --out el --list empty.txt 2> err.txt || rc=$?
[ $rc = 1 ] && grep -q "no image paths in it" err.txt && pass "an empty --list: exit 1" || fail "empty list: $rc $(cat err.txt)"
mkdir emptydir
rc=0; "$BUILD/unet-predict" --weights $W --out ed emptydir 2> err.txt || rc=$?
[ $rc = 1 ] && grep -q "emptydir: no image files" err.txt && pass "a folder without images: exit 1" || fail "empty folder: $rc $(cat err.txt)"
# every bad image is named before anything is written
echo "not an image" > photos/images/broken.jpg
head -c 300 photos/images/synth_00002.jpg > photos/images/truncated.jpg
rc=0; "$BUILD/unet-predict" --weights $W --out badrun photos/images 2> err.txt || rc=$?
[ $rc = 1 ] && grep -q "broken.jpg" err.txt && grep -q "truncated.jpg" err.txt && grep -q "2 of 9 input image(s) cannot be decoded" err.txt \
  && [ ! -e badrun ] && pass "bad inputs: all named, nothing written" || fail "bad inputs: rc $rc, $(cat err.txt); $(ls badrun 2>&1)"
rm photos/images/broken.jpg photos/images/truncated.jpg

# ---- mpirun: the batches spread over the ranks, the same bytes --------------------------
"$BUILD/unet-predict" --weights $W --out r1 photos/images --batch 2 --probs r1.h5 --original-size --threads 1 2> /dev/null
for n in 2 3; do
  "${MPIRUN[@]}" -np $n "$BUILD/unet-predict" --weights $W --out r$n photos/images --batch 2 --probs r$n.h5 --original-size \
    --threads 1 2> err$n.txt || fail "$n ranks: $(cat err$n.txt)"
  same=1
  for f in r1/*.png; do cmp -s "$f" "r$n/$(basename "$f")" || same=0; done
  [ "$(ls r$n | wc -l)" -eq 14 ] || same=0
  if command -v h5diff > /dev/null; then h5diff -q r1.h5 r$n.h5 > /dev/null || same=0; fi
  [ $same = 1 ] && pass "$n ranks: the same 14 PNGs and probabilities as 1 rank ($(grep -o '[0-9]* rank(s)' err$n.txt))" \
    || fail "$n ranks differ from 1 rank"
done
finish
