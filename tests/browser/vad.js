// The page of the browser test (see vad.html). Query parameters:
//   server  base URL of `runanywhere serve` (another origin: CORS is part of the test)
//   model   model id to fetch (silero-vad)
//   wav     URL of a 16 kHz mono 16-bit PCM WAV
// onnxruntime-web is loaded from this page's own origin (/ort/, from node_modules), never a CDN.
import * as ort from "/ort/ort.wasm.min.mjs";

const params = new URLSearchParams(location.search);
const server = params.get("server");
const modelId = params.get("model");
const log = (msg) => { document.getElementById("log").textContent += msg + "\n"; };

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function check(response, status) {
  if (response.status !== status) {
    throw new Error(`${response.url}: HTTP ${response.status}, expected ${status}: ` +
                    (await response.text()).slice(0, 300));
  }
  return response;
}

// The model: listed, fetched whole, then again as a download that stops and resumes.
async function fetchModel() {
  const listing = await (await check(await fetch(`${server}/v1/models`), 200)).json();
  const model = listing.models.find((m) => m.id === modelId);
  if (!model) throw new Error(`${modelId} is not listed by ${server}`);
  const file = model.files[0];

  const whole = await check(await fetch(file.url), 200);
  const etag = whole.headers.get("ETag");
  const bytes = new Uint8Array(await whole.arrayBuffer());

  const cut = Math.floor(file.size / 3);
  const first = await check(await fetch(file.blob_url, {headers: {Range: `bytes=0-${cut - 1}`}}),
                            206);
  const firstRange = first.headers.get("Content-Range");
  const head = new Uint8Array(await first.arrayBuffer());
  const rest = await check(await fetch(file.blob_url, {
    headers: {Range: `bytes=${head.length}-`, "If-Range": etag}}), 206);
  const restRange = rest.headers.get("Content-Range");
  const tail = new Uint8Array(await rest.arrayBuffer());
  const resumed = new Uint8Array(head.length + tail.length);
  resumed.set(head, 0);
  resumed.set(tail, head.length);

  const digest = hex(await crypto.subtle.digest("SHA-256", bytes));
  const resumedDigest = hex(await crypto.subtle.digest("SHA-256", resumed));
  return {
    listed: file, etag, size: bytes.length, sha256: digest, resumedSize: resumed.length,
    resumedSha256: resumedDigest, contentRanges: [firstRange, restRange],
    cacheControl: rest.headers.get("Cache-Control"), bytes,
  };
}

// A 16-bit PCM WAV as float32 in [-1, 1): the same numbers the Python side reads.
async function readWav(url) {
  const buf = await (await check(await fetch(url), 200)).arrayBuffer();
  const view = new DataView(buf);
  let pos = 12, rate = 0, bits = 0, channels = 0;
  while (pos + 8 <= view.byteLength) {
    const id = String.fromCharCode(...new Uint8Array(buf, pos, 4));
    const size = view.getUint32(pos + 4, true);
    if (id === "fmt ") {
      channels = view.getUint16(pos + 10, true);
      rate = view.getUint32(pos + 12, true);
      bits = view.getUint16(pos + 22, true);
    } else if (id === "data") {
      if (channels !== 1 || bits !== 16 || rate !== 16000) {
        throw new Error(`want 16 kHz mono 16-bit PCM, got ${rate} Hz ${channels} ch ${bits} bit`);
      }
      const n = size / 2;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt16(pos + 8 + 2 * i, true) / 32768;
      return out;
    }
    pos += 8 + size + (size % 2);
  }
  throw new Error("no data chunk in the WAV");
}

// Silero VAD v5/v6: windows of 512 samples after 64 of context, a state fed back.
async function speechProbabilities(session, audio) {
  const win = 512, ctx = 64;
  const n = Math.ceil(audio.length / win);
  const padded = new Float32Array(n * win);
  padded.set(audio);
  let state = new ort.Tensor("float32", new Float32Array(2 * 128), [2, 1, 128]);
  let context = new Float32Array(ctx);
  const sr = new ort.Tensor("int64", BigInt64Array.from([16000n]), []);
  const probs = [];
  for (let i = 0; i < n; i++) {
    const x = new Float32Array(ctx + win);
    x.set(context, 0);
    x.set(padded.subarray(i * win, (i + 1) * win), ctx);
    const out = await session.run({input: new ort.Tensor("float32", x, [1, ctx + win]), state, sr});
    probs.push(out.output.data[0]);
    state = out.stateN;
    context = x.slice(x.length - ctx);
  }
  return probs;
}

// runanywhere.adapters.silero_vad.speech_timestamps_from_probs (itself silero-vad 6.2.3's
// get_speech_timestamps_from_probs), line for line, with the adapter's defaults.
function speechTimestamps(probs, audioLength) {
  const sampling = 16000, threshold = 0.5, windowSize = 512;
  const minSpeech = sampling * 250 / 1000, pad = sampling * 30 / 1000;
  const maxSpeech = Infinity;
  const minSilence = sampling * 100 / 1000, minSilenceAtMax = sampling * 98 / 1000;
  const negThreshold = Math.max(threshold - 0.15, 0.01);
  let triggered = false, speeches = [], current = {}, tempEnd = 0, prevEnd = 0, nextStart = 0;
  let possibleEnds = [];
  for (let i = 0; i < probs.length; i++) {
    const prob = probs[i];
    const cur = windowSize * i;
    if (prob >= threshold && tempEnd) {
      const silDur = cur - tempEnd;
      if (silDur > minSilenceAtMax) possibleEnds.push([tempEnd, silDur]);
      tempEnd = 0;
      if (nextStart < prevEnd) nextStart = cur;
    }
    if (prob >= threshold && !triggered) {
      triggered = true;
      current.start = cur;
      continue;
    }
    if (triggered && cur - current.start > maxSpeech) {
      throw new Error("max_speech_duration is infinite in this port");
    }
    if (prob < negThreshold && triggered) {
      if (!tempEnd) tempEnd = cur;
      const silNow = cur - tempEnd;
      if (silNow < minSilence) continue;
      current.end = tempEnd;
      if (current.end - current.start > minSpeech) speeches.push(current);
      current = {};
      prevEnd = nextStart = tempEnd = 0;
      triggered = false;
      possibleEnds = [];
      continue;
    }
  }
  if ("start" in current && audioLength - current.start > minSpeech) {
    current.end = audioLength;
    speeches.push(current);
  }
  for (let i = 0; i < speeches.length; i++) {
    const s = speeches[i];
    if (i === 0) s.start = Math.trunc(Math.max(0, s.start - pad));
    if (i !== speeches.length - 1) {
      const silence = speeches[i + 1].start - s.end;
      if (silence < 2 * pad) {
        s.end += Math.trunc(Math.floor(silence / 2));
        speeches[i + 1].start = Math.trunc(Math.max(0, speeches[i + 1].start -
                                                       Math.floor(silence / 2)));
      } else {
        s.end = Math.trunc(Math.min(audioLength, s.end + pad));
        speeches[i + 1].start = Math.trunc(Math.max(0, speeches[i + 1].start - pad));
      }
    } else {
      s.end = Math.trunc(Math.min(audioLength, s.end + pad));
    }
  }
  return speeches.map((s) => [Math.trunc(s.start), Math.trunc(s.end)]);
}

async function main() {
  const model = await fetchModel();
  log(`model: ${model.size} bytes, sha256 ${model.sha256}`);
  ort.env.wasm.numThreads = 1;  // no cross-origin isolation here: no SharedArrayBuffer
  const session = await ort.InferenceSession.create(model.bytes, {executionProviders: ["wasm"]});
  delete model.bytes;
  const audio = await readWav(params.get("wav"));
  const t0 = performance.now();
  const probs = await speechProbabilities(session, audio);
  const segments = speechTimestamps(probs, audio.length);
  log(`segments: ${JSON.stringify(segments)}`);
  return {ok: true, model, inputs: session.inputNames, outputs: session.outputNames,
          samples: audio.length, probs, segments, ms: performance.now() - t0,
          ortVersion: ort.env.versions ? ort.env.versions.web || "" : ""};
}

main().then((r) => { window.__result = r; },
            (e) => { window.__result = {ok: false, error: String(e && e.stack || e)}; });
