#!/usr/bin/env node
// Runs an ONNX model exported by unet-export in ONNX Runtime (onnxruntime-node)
// and compares its probabilities with unet-predict's.
//
//   node check_onnx.js --ort DIR --model M.onnx --input X.u8 --size HxW --batch N
//                      --probs P.f32 --classes C --type float|uint8 --shape N,H,W,3
//                      [--tol 1e-4] [--agree 0.999] [--min-unsaturated 0]
//
// X.u8: the resized images [N,H,W,3] uint8 (tests/tools/resized_rgb.c);
// P.f32: unet-predict --probs as raw little-endian float32 [N,H,W,C].
// --shape is the input shape the model must declare ("N" for a free dimension).
// --min-unsaturated: the share of pixels whose largest reference probability is
// below 0.99 must reach it, so the comparison is not between saturated 0s and 1s.
// Prints one line of measurements; exits 1 when a check fails.
'use strict';
const fs = require('fs');
const path = require('path');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const k of ['ort', 'model', 'input', 'size', 'batch', 'probs', 'classes', 'type', 'shape'])
  if (args[k] === undefined) { console.error(`check_onnx.js: missing --${k}`); process.exit(2); }
const ort = require(path.join(path.resolve(args.ort), 'node_modules', 'onnxruntime-node'));
const [H, W] = args.size.split('x').map(Number);
const N = Number(args.batch), C = Number(args.classes);
const tol = Number(args.tol || 1e-4), agreeMin = Number(args.agree || 0.999);
const minUnsaturated = Number(args['min-unsaturated'] || 0);
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };

(async () => {
  const session = await ort.InferenceSession.create(args.model, {intraOpNumThreads: 1, interOpNumThreads: 1});
  check(session.inputNames.length === 1 && session.inputNames[0] === 'image', `inputs ${session.inputNames}`);
  check(session.outputNames.length === 1 && session.outputNames[0] === 'probs', `outputs ${session.outputNames}`);
  if (session.inputMetadata) { // onnxruntime-node >= 1.21
    const meta = session.inputMetadata[0];
    check(meta.type === (args.type === 'uint8' ? 'uint8' : 'float32'), `input type ${meta.type}`);
    check(meta.shape.join(',') === args.shape, `input shape ${meta.shape.join(',')}, expected ${args.shape}`);
  }
  const bytes = fs.readFileSync(args.input);
  check(bytes.length === N * H * W * 3, `input file has ${bytes.length} bytes, expected ${N * H * W * 3}`);
  const data = args.type === 'uint8' ? new Uint8Array(bytes) : Float32Array.from(bytes);
  const feed = {image: new ort.Tensor(args.type === 'uint8' ? 'uint8' : 'float32', data, [N, H, W, 3])};
  const t0 = process.hrtime.bigint();
  const out = (await session.run(feed)).probs;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  check(out.dims.join(',') === [N, H, W, C].join(','), `output dims ${out.dims}`);
  const raw = fs.readFileSync(args.probs);
  const ref = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  check(ref.length === out.data.length, `reference has ${ref.length} values, ONNX Runtime ${out.data.length}`);

  let maxDiff = 0, sumDiff = 0, agree = 0, unsaturated = 0, worstSum = 0;
  const pixels = N * H * W;
  for (let p = 0; p < pixels; p++) {
    let a = 0, b = 0, sum = 0, top = 0;
    for (let k = 0; k < C; k++) {
      const x = out.data[p * C + k], y = ref[p * C + k];
      const d = Math.abs(x - y);
      if (!(d <= maxDiff)) maxDiff = d; // NaN propagates as a failure
      sumDiff += d;
      sum += x;
      if (x > out.data[p * C + a]) a = k;
      if (y > ref[p * C + b]) b = k;
      if (y > top) top = y;
    }
    if (a === b) agree++;
    if (top < 0.99) unsaturated++;
    worstSum = Math.max(worstSum, Math.abs(sum - 1));
  }
  const agreement = agree / pixels;
  check(maxDiff <= tol, `max |p_onnx - p_predict| = ${maxDiff.toExponential(2)} > ${tol}`);
  check(agreement >= agreeMin, `argmax agreement ${(100 * agreement).toFixed(3)}% < ${100 * agreeMin}%`);
  check(unsaturated / pixels >= minUnsaturated,
        `only ${(100 * unsaturated / pixels).toFixed(2)}% of pixels have a probability below 0.99`);
  check(worstSum < 1e-4, `probabilities sum to 1 +- ${worstSum.toExponential(2)}`);
  console.log(`onnxruntime-node ${ort.env.versions ? ort.env.versions.node : '?'}: ${N} x ${H}x${W} ${args.type}: ` +
              `max |dp| ${maxDiff.toExponential(2)}, mean |dp| ${(sumDiff / (pixels * C)).toExponential(2)}, ` +
              `argmax agree ${(100 * agreement).toFixed(3)}%, max prob < 0.99 at ${(100 * unsaturated / pixels).toFixed(1)}% ` +
              `of pixels, ${ms.toFixed(0)} ms`);
  if (failures.length) {
    for (const f of failures) console.error(`FAIL: ${f}`);
    process.exit(1);
  }
})().catch((e) => { console.error(`check_onnx.js: ${e.message || e}`); process.exit(1); });
