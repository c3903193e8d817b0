// actionnet-edge browser demo: camera -> sliding window of T frames -> onnxruntime-web -> top-3.
//
// The preprocessing, window and smoothing mirror actionnet_edge/demo/window.py line by line
// (the reference the tests compare this page against); every constant comes from metadata.json.
// A streaming artifact (metadata.json has a `streaming` section, `export --streaming`) runs one
// inference per kept frame instead, its state carried from frame to frame (StreamState), as
// actionnet_edge/demo/live.py does. The page shows where it is (`#state`, `demo.phase`): loading
// the runtime / metadata / model, waiting for the camera, camera refused or missing, model
// failed (with the reason), running.
let ort = null; // onnxruntime-web, imported in main() so that a runtime that fails to load is shown

const $ = (id) => document.getElementById(id);

// ---- the demo logic (mirror of window.py) ---------------------------------------------------

const roundHalfUp = (x) => Math.floor(x + 0.5);

/** Bilinear taps along one axis: source indices lo/hi and weight f (see window.py). */
function taps(h, w, resize, size, vertical) {
  const scale = resize / Math.min(h, w);
  const n = vertical ? h : w;
  const rn = roundHalfUp(n * scale);
  const o = Math.floor((rn - size) / 2);
  const lo = new Int32Array(size), hi = new Int32Array(size), f = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    let s = (o + i + 0.5) * n / rn - 0.5;
    s = Math.min(Math.max(s, 0), n - 1);
    lo[i] = Math.floor(s);
    hi[i] = Math.min(lo[i] + 1, n - 1);
    f[i] = s - lo[i];
  }
  return { lo, hi, f };
}

export class Preprocess {
  constructor(meta) {
    this.size = meta.size | 0;
    this.resize = (meta.resize | 0) || roundHalfUp(this.size * 256 / 224);
    this.mean = meta.mean.map(Number);
    this.std = meta.std.map(Number);
    this.cache = null;
  }

  /** RGBA bytes (ImageData.data) of a w x h frame -> Float32Array (3, size, size). */
  run(rgba, w, h) {
    const S = this.size;
    if (!this.cache || this.cache.w !== w || this.cache.h !== h) {
      this.cache = { w, h, y: taps(h, w, this.resize, S, true), x: taps(h, w, this.resize, S, false) };
    }
    const { x, y } = this.cache;
    const out = new Float32Array(3 * S * S);
    for (let i = 0; i < S; i++) {
      const fy = y.f[i], rl = y.lo[i] * w, rh = y.hi[i] * w;
      for (let j = 0; j < S; j++) {
        const fx = x.f[j], xl = x.lo[j], xh = x.hi[j];
        const a = (rl + xl) * 4, b = (rl + xh) * 4, c = (rh + xl) * 4, d = (rh + xh) * 4;
        for (let ch = 0; ch < 3; ch++) {
          const top = (1 - fx) * rgba[a + ch] + fx * rgba[b + ch];
          const bot = (1 - fx) * rgba[c + ch] + fx * rgba[d + ch];
          const v = (1 - fy) * top + fy * bot;
          out[ch * S * S + i * S + j] = (v / 255 - this.mean[ch]) / this.std[ch];
        }
      }
    }
    return out;
  }
}

export function softmax(logits) {
  let m = -Infinity;
  for (const v of logits) m = Math.max(m, v);
  const e = Array.from(logits, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export class SlidingWindow {
  constructor(meta, stride = 1, alpha = 0.5) {
    this.labels = meta.labels;
    this.segments = meta.segments | 0;
    this.preprocess = new Preprocess(meta);
    this.stride = Math.max(1, stride | 0);
    this.alpha = alpha;
    this.frames = [];
    this.scores = null;
    this.seen = 0;
  }

  /** Offer one frame; true when it entered a full window (time to run the model). */
  push(rgba, w, h) {
    this.seen += 1;
    if ((this.seen - 1) % this.stride) return false;
    this.frames.push(this.preprocess.run(rgba, w, h));
    if (this.frames.length > this.segments) this.frames.shift();
    return this.frames.length === this.segments;
  }

  /** The window as one Float32Array (1, T, 3, S, S), or (1, T, S, S, 3) for NHWC. */
  clip(layout = 'NCHW') {
    const S = this.preprocess.size, n = 3 * S * S;
    const out = new Float32Array(this.segments * n);
    this.frames.forEach((f, t) => {
      if (layout === 'NHWC') {
        for (let c = 0; c < 3; c++) for (let p = 0; p < S * S; p++) out[t * n + p * 3 + c] = f[c * S * S + p];
      } else {
        out.set(f, t * n);
      }
    });
    return out;
  }

  update(logits) {
    const p = softmax(logits);
    this.scores = this.scores === null ? p : this.scores.map((s, i) => this.alpha * s + (1 - this.alpha) * p[i]);
    return this.scores;
  }

  top(k = 3) {
    if (this.scores === null) return [];
    const idx = this.scores.map((s, i) => i).sort((a, b) => this.scores[b] - this.scores[a] || a - b);
    return idx.slice(0, k).map((i) => [this.labels[i], this.scores[i]]);
  }
}

/**
 * The `streaming` section of metadata.json: the step takes `frame` (1, 3, S, S) and every state
 * tensor (zeros for the first frame) and returns `logits`, `frame_logits` and `<name>_out` per
 * state tensor, fed back as `<name>` for the next frame. Mirror of StreamingState.kt / .swift.
 */
export class StreamState {
  constructor(section, size) {
    const bad = (why) => new Error(`metadata.json: bad 'streaming' section (${why})`);
    if (!section || !Array.isArray(section.inputs) || !Array.isArray(section.outputs) || !Array.isArray(section.state)) {
      throw bad('needs inputs, outputs and state lists');
    }
    const frame = section.inputs[0];
    if (!frame || frame.name !== 'frame' || String(frame.shape) !== String([1, 3, size, size])) {
      throw bad(`the first input must be 'frame' of shape [1,3,${size},${size}]`);
    }
    this.frame = { name: frame.name, shape: frame.shape.map(Number) };
    this.state = section.state.map((t) => {
      if (!t || typeof t.name !== 'string' || typeof t.output !== 'string' || !Array.isArray(t.shape)) {
        throw bad('every state tensor needs name, shape and output');
      }
      const shape = t.shape.map(Number);
      return { name: t.name, output: t.output, shape, size: shape.reduce((a, b) => a * b, 1) };
    });
    const names = section.inputs.slice(1).map((t) => t.name);
    if (String(names) !== String(this.state.map((t) => t.name))) throw bad('inputs after frame must be the state tensors');
    const outs = new Set(section.outputs.map((t) => t.name));
    const missing = ['logits', ...this.state.map((t) => t.output)].find((n) => !outs.has(n));
    if (missing) throw bad(`no output '${missing}'`);
    this.window = section.window | 0;
    if (this.window < 1) throw bad('window must be >= 1');
    this.reset();
  }

  /** Zero state: the start of a stream. */
  reset() {
    this.values = this.state.map((t) => new Float32Array(t.size));
    this.steps = 0;
  }

  /** True once `window` frames have run: the logits then average a full window. */
  get ready() { return this.steps >= this.window; }

  /** [name, data, shape] of every input of the next step, in metadata.json's order. */
  inputs(frame) {
    return [[this.frame.name, frame, this.frame.shape], ...this.state.map((t, i) => [t.name, this.values[i], t.shape])];
  }

  /** Take one step's outputs (name -> Float32Array): keep `<name>_out` as the next `<name>`; the logits. */
  update(outputs) {
    const next = this.state.map((t) => {
      const v = outputs[t.output];
      if (!v || v.length !== t.size) {
        throw new Error(`the model gave ${v ? v.length : 'no'} values for '${t.output}', metadata.json says ${t.size}`);
      }
      return v;
    });
    if (!outputs.logits) throw new Error("the model gave no 'logits'");
    this.values = next;
    this.steps += 1;
    return outputs.logits;
  }
}

// ---- the self-test (?selftest): the artifact's vectors in this browser's runtime ----------------
// Mirror of actionnet_edge/verify/check.py (judge) over vectors.json + vectors.bin (docs/verify.md).

/** The tensors of vectors.json over vectors.bin (an ArrayBuffer): name -> { data: Float32Array, shape }. */
export function readVectors(doc, buffer) {
  if (!doc || doc.format !== 'actionnet-edge.vectors/1') throw new Error(`vectors.json: format ${doc && doc.format}`);
  const tensors = {};
  for (const t of doc.tensors || []) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.offset + 4 * n > buffer.byteLength) throw new Error(`vectors.bin is too short for tensor '${t.name}'`);
    const view = new DataView(buffer, t.offset, 4 * n); // little-endian whatever the machine's order
    const data = new Float32Array(n);
    for (let i = 0; i < n; i += 1) data[i] = view.getFloat32(4 * i, true);
    tensors[t.name] = { data, shape: t.shape };
  }
  if (!tensors.input || !tensors.pytorch) throw new Error("vectors.json lacks the 'input' or 'pytorch' tensor");
  return tensors;
}

/** max abs error, cosine, SQNR (dB) and top-1 agreement of `test` against `ref` ((n*k) values, n rows). */
export function compareLogits(ref, test, n) {
  if (ref.length !== test.length) throw new Error(`output of ${test.length} values, reference ${ref.length}`);
  const k = ref.length / n;
  let maxAbs = 0, dot = 0, nr = 0, nt = 0, noise = 0, agree = 0;
  for (let i = 0; i < ref.length; i += 1) {
    const d = ref[i] - test[i];
    maxAbs = Math.max(maxAbs, Math.abs(d));
    dot += ref[i] * test[i]; nr += ref[i] * ref[i]; nt += test[i] * test[i]; noise += d * d;
  }
  const argmax = (a, r) => { let b = 0; for (let j = 1; j < k; j += 1) if (a[r * k + j] > a[r * k + b]) b = j; return b; };
  for (let r = 0; r < n; r += 1) agree += argmax(ref, r) === argmax(test, r) ? 1 : 0;
  const den = Math.sqrt(nr) * Math.sqrt(nt);
  return { max_abs_err: maxAbs, cosine: den > 0 ? dot / den : (noise === 0 ? 1 : 0),
           sqnr_db: noise === 0 ? Infinity : 10 * Math.log10(nr / noise), top1_agreement: agree / n };
}

/** Figures and checks of `out` ({ logits, frame_logits? }: Float32Array of n*K) against the vectors. */
export function judgeVectors(doc, tensors, out) {
  const n = doc.count, tol = doc.tolerances, checks = {}, figures = {};
  const vp = figures.vs_pytorch = compareLogits(tensors.pytorch.data, out.logits, n);
  const minCos = doc.precision === 'fp32' ? tol.min_cosine : tol.min_cosine_fp16;
  if (doc.precision === 'int8') {
    checks[`vs pytorch: sqnr_db vs float >= ${tol.min_sqnr_db}`] = vp.sqnr_db >= tol.min_sqnr_db;
    checks[`vs pytorch: top1_agreement vs float >= ${tol.min_top1_int8}`] = vp.top1_agreement >= tol.min_top1_int8;
  } else {
    checks[`vs pytorch: cosine vs float >= ${minCos}`] = vp.cosine >= minCos;
    checks[`vs pytorch: top1_agreement vs float >= ${tol.min_top1}`] = vp.top1_agreement >= tol.min_top1;
  }
  if (doc.kind === 'stream') {
    const fl = figures.frame_logits_vs_pytorch = compareLogits(tensors.pytorch_frame_logits.data, out.frame_logits, n);
    if (doc.precision === 'int8') checks[`vs pytorch: frame_logits sqnr_db >= ${tol.min_sqnr_db}`] = fl.sqnr_db >= tol.min_sqnr_db;
    else checks[`vs pytorch: frame_logits cosine >= ${minCos}`] = fl.cosine >= minCos;
  }
  if (tensors.host_runtime) {
    const host = tensors.host_runtime.data;
    const vh = figures.vs_host_runtime = compareLogits(host, out.logits, n);
    const atol = tol.host_rtol * Math.max(1, host.reduce((m, v) => Math.max(m, Math.abs(v)), 0));
    checks[`vs host runtime: max abs err <= ${atol.toPrecision(3)}`] = vh.max_abs_err <= atol;
    checks['vs host runtime: same top-1 on every vector'] = vh.top1_agreement === 1;
  }
  const failures = Object.keys(checks).filter((c) => !checks[c]);
  return { ...figures, checks, failures, passed: failures.length === 0, count: n, kind: doc.kind,
           precision: doc.precision };
}

/** Run every vector through `session` (a stream: frame by frame from the zero state, state fed back). */
async function runVectors(session, doc, tensors, meta) {
  const { data, shape } = tensors.input, n = doc.count, per = data.length / n, dims = shape.slice(1);
  const logits = [], frameLogits = [];
  const stepper = doc.kind === 'stream' ? new StreamState(meta.streaming, meta.size | 0) : null;
  for (let i = 0; i < n; i += 1) {
    const x = data.slice(i * per, (i + 1) * per);
    if (stepper) {
      const feeds = {};
      for (const [name, d, s] of stepper.inputs(x)) feeds[name] = new ort.Tensor('float32', d, s);
      const out = await session.run(feeds);
      const got = {};
      for (const [name, t] of Object.entries(out)) got[name] = t.data;
      logits.push(...stepper.update(got));
      frameLogits.push(...got.frame_logits);
    } else {
      const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, dims) });
      logits.push(...out[session.outputNames[0]].data);
    }
  }
  return { logits: Float32Array.from(logits), frame_logits: Float32Array.from(frameLogits) };
}

/** The self-test page: load the vectors metadata.json names, run them, show and expose the result. */
async function selfTest(meta, session) {
  if (!meta.vectors) throw new Error('metadata.json has no vectors section: re-export the model');
  show('loading', 'Self-test…', meta.vectors.file);
  const doc = await load(`artifact/${meta.vectors.file}`, 'json', meta.vectors.file);
  const bin = await load(`artifact/${meta.vectors.data}`, 'bytes', meta.vectors.data);
  const tensors = readVectors(doc, bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));
  const result = judgeVectors(doc, tensors, await runVectors(session, doc, tensors, meta));
  window.selftestResult = result;
  document.body.dataset.selftest = result.passed ? 'pass' : 'fail';
  const f = (v, d) => (Number.isFinite(v) ? v.toFixed(d) : String(v));
  const line = (name, r) => `${name}: max abs err ${r.max_abs_err.toPrecision(3)}, cosine ${f(r.cosine, 7)}, `
    + `SQNR ${f(r.sqnr_db, 1)} dB, top-1 ${(100 * r.top1_agreement).toFixed(0)}%`;
  const lines = [line('vs PyTorch', result.vs_pytorch)];
  if (result.vs_host_runtime) lines.push(line('vs host runtime', result.vs_host_runtime));
  if (result.failures.length) lines.push(`missed: ${result.failures.join('; ')}`);
  $('stats').textContent = lines.join(' · ');
  const title = `Self-test ${result.passed ? 'passed' : 'FAILED'} (${result.count} ${result.kind === 'stream' ? 'frames' : 'clips'}, ${result.precision})`;
  if (result.passed) show('running', title, lines[0]); else fail(lines.join(' · '), title);
}

// ---- the page ---------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
const state = { ready: false, error: null, phase: 'loading', phases: ['loading'], mode: null, inferences: 0,
                skipped: 0, history: [], thumbs: [], last: null, steps: [] };
window.demo = state; // read by the end-to-end test (and handy in the console)
const DEBUG_STEPS = 64; // streaming + debug: the first steps recorded (frame bytes, logits, scores)

/** Show the page's state: `phase` is one of loading, camera, denied, nocamera, failed, running. */
function show(phase, title, detail = '') {
  if (state.phase !== phase) state.phases.push(phase);
  state.phase = phase;
  $('state').dataset.state = phase;
  document.body.dataset.state = phase;
  $('state-title').textContent = title;
  $('state-detail').textContent = detail;
}

/** RGBA bytes of a frame -> { w, h, rgb: base64 of its RGB bytes }. */
function rgbBase64({ w, h, rgba }) {
  const rgb = new Uint8Array(w * h * 3);
  for (let p = 0; p < w * h; p++) { rgb[3 * p] = rgba[4 * p]; rgb[3 * p + 1] = rgba[4 * p + 1]; rgb[3 * p + 2] = rgba[4 * p + 2]; }
  let bin = '';
  for (let i = 0; i < rgb.length; i += 0x8000) bin += String.fromCharCode.apply(null, rgb.subarray(i, i + 0x8000));
  return { w, h, rgb: btoa(bin) };
}

/** Debug (?debug): the last window's frames as base64 RGB bytes, for comparing with Python. */
state.exportLast = () => {
  if (!state.last || !state.last.frames) return null;
  return { frames: state.last.frames.map(rgbBase64), logits: state.last.logits, scores: state.last.scores, top: state.last.top };
};

/** Debug, streaming: the first DEBUG_STEPS steps since the stream started from zero state, each
 * with the frame it ran on, its logits and the smoothed scores after it (null before `window`). */
state.exportStream = () => ({
  total: state.inferences,
  frames: state.steps.map(rgbBase64),
  logits: state.steps.map((s) => s.logits),
  scores: state.steps.map((s) => s.scores),
});

/** Debug: an 8x8 grid of mean brightness, to tell which source frame the camera delivered. */
function thumb(rgba, w, h) {
  const out = new Float32Array(64), n = new Float32Array(64);
  for (let y = 0; y < h; y++) {
    const gy = Math.floor((8 * y) / h);
    for (let x = 0; x < w; x++) {
      const g = gy * 8 + Math.floor((8 * x) / w), p = 4 * (y * w + x);
      out[g] += (rgba[p] + rgba[p + 1] + rgba[p + 2]) / 3;
      n[g] += 1;
    }
  }
  return Array.from(out, (v, i) => v / n[i]);
}

/** The model (or its runtime, or metadata.json) failed: the page says why and stops. */
function fail(msg, title = 'Model failed') {
  state.error = msg;
  show('failed', title, msg);
  $('stats').textContent = '';
}

/** GET `url` as `kind` ('json' or 'bytes'); an HTTP error or bad JSON says which file and why. */
async function load(url, kind, what = url) {
  let r;
  try {
    r = await fetch(url);
  } catch (e) {
    throw new Error(`${what}: ${e.message}`);
  }
  if (!r.ok) throw new Error(`${what}: HTTP ${r.status} ${r.statusText || ''}`.trim());
  if (kind === 'bytes') return new Uint8Array(await r.arrayBuffer());
  try {
    return JSON.parse(await r.text());
  } catch (e) {
    throw new Error(`${what} is not valid JSON (${e.message})`);
  }
}

/** metadata.json as the page uses it; a missing or malformed field is the reason the page shows. */
function checkMeta(meta) {
  const bad = (why) => new Error(`metadata.json: ${why}`);
  if (!meta || typeof meta !== 'object' || Array.isArray(meta)) throw bad('not a JSON object');
  if (!Array.isArray(meta.labels) || !meta.labels.length || !meta.labels.every((l) => typeof l === 'string')) {
    throw bad("'labels' must be a non-empty list of names");
  }
  for (const k of ['segments', 'size']) if (!(Number(meta[k]) >= 1)) throw bad(`'${k}' must be a number >= 1`);
  for (const k of ['mean', 'std']) if (!Array.isArray(meta[k]) || meta[k].length !== 3) throw bad(`'${k}' needs 3 values`);
  if (meta.layout && !['NCHW', 'NHWC'].includes(meta.layout)) throw bad(`unknown layout '${meta.layout}'`);
  return meta;
}

/** The gestures the model knows, as chips (the current top-1 highlighted by render()). */
function listGestures(labels) {
  $('gesture-count').textContent = `(${labels.length})`;
  $('gestures').replaceChildren(...labels.map((label) => {
    const li = document.createElement('li');
    li.textContent = label;
    return li;
  }));
}

function render(top, fps, ms, streaming = false) {
  $('top').replaceChildren(...top.map(([label, score]) => {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = label;
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.width = `${(100 * score).toFixed(1)}%`;
    const val = document.createElement('span');
    val.className = 'score';
    val.textContent = score.toFixed(3);
    li.append(name, bar, val);
    return li;
  }));
  if (top.length) {
    $('overlay').textContent = `${top[0][0]} ${(100 * top[0][1]).toFixed(0)}%`;
    for (const li of $('gestures').children) li.classList.toggle('now', li.textContent === top[0][0]);
  }
  $('stats').textContent = streaming
    ? `streaming · ${fps.toFixed(1)} fps (frames run through the model) · inference ${ms.toFixed(1)} ms per frame`
    : `${fps.toFixed(1)} fps (camera frames processed) · inference ${ms.toFixed(1)} ms`;
}

/** Load the runtime, metadata.json and the model; each failure is shown with its reason. */
async function loadModel(config) {
  try {
    ort = await import('./vendor/ort/ort.wasm.min.mjs');
  } catch (e) {
    throw Object.assign(new Error(`onnxruntime-web did not load (${e.message}); run: npm ci --prefix web_demo`),
                        { title: 'Runtime failed' });
  }
  show('loading', 'Loading the model…', 'metadata.json');
  const meta = checkMeta(await load(config.metadata, 'json', 'metadata.json'));
  listGestures(meta.labels);
  show('loading', 'Loading the model…', config.model_name);
  const bytes = await load(config.model, 'bytes', config.model_name);
  ort.env.wasm.wasmPaths = new URL('vendor/ort/', location.href).href;
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  } catch (e) {
    throw new Error(`${config.model_name} (${bytes.length} bytes) did not load: ${e.message || e}`);
  }
  return { meta, session };
}

/** Ask for the camera; null (and the page says why) when it is refused or missing. */
async function openCamera() {
  show('camera', 'Waiting for the camera…', 'Allow the camera when the browser asks.');
  try {
    return await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'user' }, audio: false });
  } catch (e) {
    state.error = `${e.name}: ${e.message}`;
    if (e.name === 'NotAllowedError' || e.name === 'SecurityError') {
      show('denied', 'Camera refused', `${state.error}. Allow the camera for this page in the browser's site `
        + 'settings, then reload.');
    } else {
      show('nocamera', 'No camera', `${state.error}. Connect a camera (or free it from another app), then reload.`);
    }
    return null;
  }
}

async function main() {
  const config = await load('config.json', 'json');
  const { meta, session } = await loadModel(config);
  if (params.has('selftest')) return selfTest(meta, session);
  const stride = Number(params.get('stride') ?? config.stride ?? 1);
  const alpha = Number(params.get('alpha') ?? config.alpha ?? 0.5);
  const debug = params.has('debug') || !!config.debug;
  const layout = meta.layout || 'NCHW';
  const streamSection = meta.streaming;
  let stepper = null;
  if (streamSection) {
    stepper = new StreamState(streamSection, meta.size | 0);
    const want = stepper.inputs(null).map(([n]) => n);
    const missing = want.find((n) => !session.inputNames.includes(n))
      || [...session.inputNames].find((n) => !want.includes(n));
    if (missing) return fail(`${config.model_name} and the 'streaming' section of metadata.json disagree on input '${missing}'`);
  }
  state.mode = stepper ? 'streaming' : 'clip';
  const inputName = session.inputNames[0], outputName = session.outputNames[0];
  const about = stepper
    ? `${config.model_name} (streaming: one inference per frame, logits over the last ${stepper.window} frames × `
      + `${meta.size} px, ${meta.labels.length} gestures)`
    : `${config.model_name} (${meta.segments} frames × ${meta.size} px, ${meta.labels.length} gestures)`;
  $('model').textContent = about;

  const stream = await openCamera();
  if (!stream) return;
  const video = $('video');
  video.srcObject = stream;
  await video.play();
  show('running', 'Running', about);

  const win = new SlidingWindow(meta, stride, alpha);
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const raw = []; // debug: the RGB bytes of the frames in the window
  let busy = false, frames = 0, t0 = performance.now(), fps = 0, ms = 0;
  state.ready = true;
  $('stats').textContent = stepper ? `streaming: filling the first ${stepper.window} frames…` : 'waiting for the first window…';

  /** Streaming: one inference on this kept frame; a frame arriving while the last one runs is dropped. */
  const streamStep = (rgba, w, h) => {
    if (busy) { state.skipped += 1; return; }
    busy = true;
    const x = win.preprocess.run(rgba, w, h);
    const feeds = {};
    for (const [name, data, dims] of stepper.inputs(x)) feeds[name] = new ort.Tensor('float32', data, dims);
    const start = performance.now();
    session.run(feeds).then((out) => {
      ms = performance.now() - start;
      const data = {};
      for (const [name, t] of Object.entries(out)) data[name] = t.data;
      const logits = Array.from(stepper.update(data));
      state.inferences += 1;
      frames += 1;
      const now = performance.now();
      if (now - t0 > 1000) { fps = (1000 * frames) / (now - t0); frames = 0; t0 = now; }
      const scores = stepper.ready ? win.update(logits).slice() : null;
      if (debug && state.steps.length < DEBUG_STEPS) state.steps.push({ w, h, rgba, logits, scores });
      if (!scores) return;
      const top = win.top(3);
      state.history.push(top[0][0]);
      state.last = { logits, scores, top, frames: debug ? [{ w, h, rgba }] : null };
      render(top, fps, ms, true);
    }).catch((e) => fail(`Inference failed: ${e.message}`)).finally(() => { busy = false; });
  };

  const onFrame = () => {
    const w = video.videoWidth, h = video.videoHeight;
    if (w && h) {
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      ctx.drawImage(video, 0, 0, w, h);
      const rgba = ctx.getImageData(0, 0, w, h).data;
      const kept = (win.seen % win.stride) === 0;
      if (stepper) {
        win.seen += 1; // the window's stride counter; its frames stay empty
        if (kept) streamStep(rgba, w, h);
        return schedule();
      }
      const full = win.push(rgba, w, h);
      if (debug && kept) {
        raw.push({ w, h, rgba, thumb: thumb(rgba, w, h) });
        if (raw.length > win.segments) raw.shift();
      }
      frames += 1;
      const now = performance.now();
      if (now - t0 > 1000) { fps = (1000 * frames) / (now - t0); frames = 0; t0 = now; }
      if (full && !busy) {
        busy = true;
        const input = win.clip(layout);
        const clipFrames = debug ? raw.slice() : null;
        const dims = layout === 'NHWC' ? [1, win.segments, win.preprocess.size, win.preprocess.size, 3]
                                       : [1, win.segments, 3, win.preprocess.size, win.preprocess.size];
        const start = performance.now();
        session.run({ [inputName]: new ort.Tensor('float32', input, dims) }).then((out) => {
          ms = performance.now() - start;
          const logits = Array.from(out[outputName].data);
          win.update(logits);
          const top = win.top(3);
          state.inferences += 1;
          state.history.push(top[0][0]);
          if (debug) state.thumbs.push(clipFrames.map((f) => f.thumb));
          state.last = { logits, scores: win.scores.slice(), top, frames: clipFrames };
          render(top, fps, ms);
        }).catch((e) => fail(`Inference failed: ${e.message}`)).finally(() => { busy = false; });
      } else if (full) {
        state.skipped += 1;
      }
    }
    schedule();
  };
  const schedule = () => (video.requestVideoFrameCallback ? video.requestVideoFrameCallback(onFrame)
                                                           : requestAnimationFrame(onFrame));
  schedule();
}

main().catch((e) => fail(e.message, e.title));
