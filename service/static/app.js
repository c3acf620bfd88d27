"use strict";
// The demo page: plain JavaScript against the service's v1 API. No build step and nothing loaded from
// elsewhere, so it works offline. URLs are relative, so the page also works behind a path prefix.

const $ = (id) => document.getElementById(id);
const state = { models: [], model: null, codes: null, urls: {} };

// ---- the model in use

function conditional(model) {
  const m = model.manifest;
  return m.kind === "vqvae" ? Boolean(m.prior && m.prior.conditional) : (m.decoder_labels || 0) > 0;
}

function classes(model) {
  const m = model.manifest;
  return m.kind === "vqvae" ? (m.prior && m.prior.num_classes) || 0 : m.decoder_labels || 0;
}

// Digits are drawn light on dark and centred as MNIST was made; any other model (faces, photos, colour) takes the
// pad's picture as it is, centre-cropped to the model's aspect ratio, in the model's colour.
function digits(model) {
  const m = model.manifest;
  return m.image_shape[0] === 1 && /mnist|synthetic/i.test(m.training.dataset);
}

// A prior trained with label dropout draws from every class when given no label: the picker offers "any".
function labelsOptional(model) {
  const m = model.manifest;
  return m.kind === "vqvae" && Boolean(m.prior && m.prior.labels_optional);
}

function labels() {
  const value = $("label").value;
  return conditional(state.model) && value !== "" ? [Number(value)] : undefined;
}

function analogies(model) {
  return model.kind === "vae" && conditional(model);
}

// Unconditional VQ-VAEs first (they need no class), then the conditional ones, then the VAEs.
function rank(model) {
  return (model.kind === "vqvae" ? 0 : 2) + (conditional(model) ? 1 : 0);
}

function choose(id) {
  const model = state.models.find((m) => m.model === id);
  state.model = model;
  state.codes = null;
  const vq = model.kind === "vqvae";
  $("label-field").hidden = !conditional(model);
  const kept = $("label").value;
  const choices = [...Array(classes(model)).keys()].map((c) => new Option(String(c), String(c)));
  if (labelsOptional(model)) choices.unshift(new Option("any", ""));
  $("label").replaceChildren(...choices);
  if (choices.length) $("label").value = choices.some((o) => o.value === kept) ? kept : choices[0].value;
  $("analogy-field").hidden = !analogies(model);
  $("keep").max = vq ? model.manifest.latent_shape[1] : 0;
  $("complete").disabled = !vq;
  $("codes-caption").textContent = vq ? "code grid" : "posterior mean";
  $("photo-section").hidden = !model.manifest.size_free;
  const [C, H, W] = model.manifest.image_shape;
  $("draw-hint").textContent = digits(model)
    ? "White on black, as in MNIST. It is cropped, centred and shrunk to the model's size in this page, then encoded and decoded by the service."
    : `Upload a picture (or draw): its centre is cropped to ${W}x${H} ${C === 3 ? "RGB" : "greyscale"}, the model's shape, in this page, then encoded and decoded by the service.`;
  for (const id of ["codes", "masked"]) $(id).replaceChildren();
  setStatus("status", `${model.model} v${model.version} (${model.kind}) on ${model.provider}`);
}

async function loadModels() {
  const response = await fetch("v1/models");
  if (!response.ok) throw await failure(response);
  const listed = await response.json();
  state.models = listed.models.slice().sort((a, b) => rank(a) - rank(b));
  if (!state.models.length) throw new Error("the service has no models loaded");
  $("model").replaceChildren(
    ...state.models.map((m) => new Option(`${m.model} (${m.kind}${conditional(m) ? ", conditional" : ""})`, m.model)),
  );
  choose(state.models[0].model);
  document.body.dataset.ready = "true";
}

// ---- HTTP

async function failure(response) {
  try {
    const error = (await response.json()).error;
    return new Error(`${response.status} ${error.code}: ${error.message}`);
  } catch {
    return new Error(`${response.status} ${response.statusText}`);
  }
}

// POST to one of the model's routes; `png` asks for one PNG grid (Accept: image/png) and gives an object URL.
async function api(route, body, { png = false, query = {} } = {}) {
  const params = new URLSearchParams({ version: state.model.version });
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) [].concat(value).forEach((v) => params.append(key, v));
  }
  const url = `v1/models/${encodeURIComponent(state.model.model)}/${route}?${params}`;
  const headers = { "content-type": "application/json", accept: png ? "image/png" : "application/json" };
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
  if (!response.ok) throw await failure(response);
  return png ? URL.createObjectURL(await response.blob()) : response.json();
}

function showUrl(imgId, url) {
  if (state.urls[imgId]) URL.revokeObjectURL(state.urls[imgId]);
  state.urls[imgId] = url;
  $(imgId).src = url;
}

function setStatus(id, text, error = false) {
  $(id).textContent = text;
  $(id).classList.toggle("error", error);
}

// Runs an action, reporting progress and errors in its section's status line.
async function run(statusId, action) {
  setStatus(statusId, "working…");
  const started = performance.now();
  try {
    await action();
    setStatus(statusId, `done in ${Math.round(performance.now() - started)} ms`);
  } catch (error) {
    setStatus(statusId, error.message, true);
  }
}

// ---- tables of codes

function showGrid(table, grid, masked = () => false, digits = 0) {
  table.replaceChildren(
    ...grid.map((row, i) => {
      const tr = document.createElement("tr");
      row.forEach((value, j) => {
        const td = tr.insertCell();
        td.textContent = masked(i, j) ? "?" : digits ? value.toFixed(digits) : value;
        if (masked(i, j)) td.classList.add("masked");
      });
      return tr;
    }),
  );
}

// ---- the four demos

async function reconstruct() {
  const { canvas, array } = toModel(pads.a.canvas);
  $("input-a").src = canvas.toDataURL();
  const query = state.model.kind === "vae" ? { labels: labels() } : {};
  const answer = await api("reconstruct", { arrays: [array] }, { query });
  $("reconstruction").src = `data:image/png;base64,${answer.images[0]}`;
  if (state.model.kind === "vqvae") {
    state.codes = answer.codes[0];
    showGrid($("codes"), state.codes);
  } else {
    showGrid($("codes"), answer.latents.map((z) => z.slice(0, 8)), undefined, 2);
  }
  if (analogies(state.model)) {
    const every = [...Array(classes(state.model)).keys()]; // one z drawn as each class: the style stays
    showUrl("analogy", await api("decode", { latents: [answer.latents[0]], labels: every }, { png: true }));
  }
}

// A number field left empty means "the model's default": the field is left out of the request.
function optionalNumber(id) {
  const value = $(id).value.trim();
  return value === "" ? undefined : Number(value);
}

async function sample() {
  const body = {
    n: Number($("n").value),
    seed: Number($("seed").value),
    temperature: optionalNumber("temperature"),
    labels: labels(),
  };
  showUrl("samples", await api("sample", body, { png: true }));
}

// The continuous latent of a pad's digit: z_e for a VQ-VAE, the posterior mean for a VAE.
async function latentOf(target) {
  const { array } = toModel(target.canvas);
  if (state.model.kind === "vqvae") return (await api("encode", { arrays: [array] }, { query: { include: "z_e" } })).z_e[0];
  return (await api("encode", { arrays: [array] })).mean[0];
}

async function interpolate() {
  const [start, end] = [await latentOf(pads.a), await latentOf(pads.b)];
  const body = {
    start: { latent: start },
    end: { latent: end },
    steps: Number($("steps").value),
    method: $("method").value,
    labels: state.model.kind === "vae" ? labels() : undefined,
  };
  showUrl("interpolation", await api("interpolate", body, { png: true }));
}

async function complete() {
  if (state.model.kind !== "vqvae") throw new Error("completion works on a VQ-VAE's code grid");
  if (!state.codes) await reconstruct();
  const keep = Number($("keep").value);
  const mask = state.codes.map((row, i) => row.map(() => i >= keep));
  showGrid($("masked"), state.codes, (i) => i >= keep);
  const body = {
    n: Number($("complete-n").value),
    seed: Number($("seed").value),
    temperature: optionalNumber("temperature"),
    labels: labels(),
    codes: state.codes,
    mask,
  };
  showUrl("completion", await api("sample", body, { png: true }));
}

// The PSNR of the reconstruction against the photo as the model saw it (greyscale for a one-channel model), from
// both images drawn at the photo's size.
function psnr(photo, reconstruction, channels) {
  const pixels = (img) => {
    const canvas = Object.assign(document.createElement("canvas"), { width: photo.naturalWidth, height: photo.naturalHeight });
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(img, 0, 0);
    return context.getImageData(0, 0, canvas.width, canvas.height).data;
  };
  const [a, b] = [pixels(photo), pixels(reconstruction)];
  const grey = (p, i) => 0.299 * p[i] + 0.587 * p[i + 1] + 0.114 * p[i + 2];
  let sum = 0;
  let count = 0;
  for (let i = 0; i < a.length; i += 4) {
    const values = channels === 1 ? [[grey(a, i), grey(b, i)]] : [0, 1, 2].map((c) => [a[i + c], b[i + c]]);
    for (const [x, y] of values) {
      sum += ((x - y) / 255) ** 2;
      count += 1;
    }
  }
  return -10 * Math.log10(sum / count);
}

const loaded = (img) => (img.complete && img.naturalWidth ? Promise.resolve() : new Promise((ok, fail) => {
  img.onload = ok;
  img.onerror = () => fail(new Error("the image did not load"));
}));

// The file as it is, to reconstruct?resize=native: the service pads it to the stride and crops the answer back.
async function reconstructPhoto(file) {
  if (!file) return;
  showUrl("photo", URL.createObjectURL(file));
  const params = new URLSearchParams({ version: state.model.version, resize: "native" });
  const form = new FormData();
  form.append("images", file);
  const url = `v1/models/${encodeURIComponent(state.model.model)}/reconstruct?${params}`;
  const response = await fetch(url, { method: "POST", body: form });
  if (!response.ok) throw await failure(response);
  const answer = await response.json();
  $("photo-reconstruction").src = `data:image/png;base64,${answer.images[0]}`;
  await Promise.all([loaded($("photo")), loaded($("photo-reconstruction"))]);
  const codes = answer.codes[0];
  const { naturalWidth: width, naturalHeight: height } = $("photo");
  const decibels = psnr($("photo"), $("photo-reconstruction"), state.model.manifest.image_shape[0]);
  $("photo-caption").textContent =
    `reconstruction: ${width}x${height} through a ${codes[0].length}x${codes.length} code grid, PSNR ${decibels.toFixed(1)} dB`;
}

// ---- wiring

let strokeTimer = null;
const pads = {
  a: pad($("canvas-a"), () => {
    clearTimeout(strokeTimer); // one request once the drawing pauses, not one per stroke
    strokeTimer = setTimeout(() => run("draw-status", reconstruct), 400);
  }),
  b: pad($("canvas-b"), () => {}),
};

$("clear-a").onclick = () => pads.a.clear();
$("clear-b").onclick = () => pads.b.clear();
$("upload-a").onchange = (e) => run("draw-status", async () => upload(pads.a, e.target.files[0]).then(reconstruct));
$("upload-b").onchange = (e) => run("interpolate-status", async () => upload(pads.b, e.target.files[0]));
$("reconstruct").onclick = () => run("draw-status", reconstruct);
$("upload-photo").onchange = (e) => run("photo-status", () => reconstructPhoto(e.target.files[0]));
$("sample").onclick = () => run("sample-status", sample);
$("next-seed").onclick = () => {
  $("seed").value = Number($("seed").value) + 1;
  run("sample-status", sample);
};
$("interpolate").onclick = () => run("interpolate-status", interpolate);
$("complete").onclick = () => run("complete-status", complete);
$("model").onchange = (e) => {
  choose(e.target.value);
  run("sample-status", sample);
};

loadModels()
  .then(() => run("sample-status", sample))
  .catch((error) => setStatus("status", error.message, true));
