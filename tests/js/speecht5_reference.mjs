// Runs Transformers.js's SpeechT5 text-to-speech, offline, on a local model folder: the reference
// our Python SpeechT5 adapter is compared with (tests/test_reference_parity.py).
//
//   node speecht5_reference.mjs ROOT CASES.json OUT.json
//
// ROOT holds tts/ (SpeechT5ForTextToSpeech, tokenizer) and vocoder/ (SpeechT5HifiGan). CASES is
// [{text, threshold, minlenratio, maxlenratio, speaker}] (speaker: a file of float32). OUT gets,
// per case, the tokenizer's input_ids, the spectrogram's shape and the waveform (base64 of
// little-endian float32).
import fs from 'node:fs';
import { env, AutoTokenizer, SpeechT5ForTextToSpeech, SpeechT5HifiGan, Tensor } from '@huggingface/transformers';

const [root, casesPath, outPath] = process.argv.slice(2);
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = root.endsWith('/') ? root : root + '/';
env.useFSCache = false;

const options = { dtype: 'fp32', device: 'cpu' };
const tokenizer = await AutoTokenizer.from_pretrained('tts');
const model = await SpeechT5ForTextToSpeech.from_pretrained('tts', options);
const vocoder = await SpeechT5HifiGan.from_pretrained('vocoder', options);

const results = [];
for (const c of JSON.parse(fs.readFileSync(casesPath, 'utf8'))) {
  const bytes = fs.readFileSync(c.speaker);
  const speaker = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const { input_ids } = tokenizer(c.text);
  const { waveform, spectrogram } = await model.generate_speech(
    input_ids, new Tensor('float32', Float32Array.from(speaker), [1, speaker.length]),
    { vocoder, threshold: c.threshold, minlenratio: c.minlenratio, maxlenratio: c.maxlenratio });
  const data = Float32Array.from(waveform.data);
  results.push({
    input_ids: Array.from(input_ids.data, Number),
    spectrogram_dims: spectrogram.dims,
    waveform: Buffer.from(data.buffer).toString('base64'),
  });
}
fs.writeFileSync(outPath, JSON.stringify(results));
