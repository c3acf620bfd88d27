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

function labels() {
  return conditional(state.model) ? [Number($("label").value)] : undefined;
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
  $("label").max = Math.max(0, classes(model) - 1);
  $("label").value = Math.min(Number($("label").value), Math.max(0, classes(model) - 1));
  $("keep").max = vq ? model.manifest.latent_shape[1] : 0;
  $("complete").disabled = !vq;
  $("codes-caption").textContent = vq ? "code grid" : "posterior mean";
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

// ---- drawing pads

function pad(canvas, onStroke) {
  const ctx = canvas.getContext("2d");
  let drawing = false;
  let last = null;
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  };
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [((event.clientX - box.left) * canvas.width) / box.width, ((event.clientY - box.top) * canvas.height) / box.height];
  };
  const line = (from, to) => {
    Object.assign(ctx, { strokeStyle: "#fff", lineWidth: canvas.width / 14, lineCap: "round", lineJoin: "round" });
    ctx.beginPath();
    ctx.moveTo(...from);
    ctx.lineTo(...to);
    ctx.stroke();
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    last = at(event);
    line(last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const here = at(event);
    line(last, here);
    last = here;
  });
  const end = () => {
    if (drawing) onStroke();
    drawing = false;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  clear();
  return { canvas, clear };
}

// An uploaded picture onto a pad; for a digit model greyscale, inverted when it is dark on light (MNIST is light
// on dark); for any other model as it is, filling the pad.
async function upload(target, file) {
  const bitmap = await createImageBitmap(file);
  const { canvas } = target;
  const ctx = canvas.getContext("2d");
  target.clear();
  const fill = digits(state.model) ? Math.min : Math.max;
  const scale = fill(canvas.width / bitmap.width, canvas.height / bitmap.height);
  const [w, h] = [bitmap.width * scale, bitmap.height * scale];
  ctx.drawImage(bitmap, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
  if (!digits(state.model)) return;
  const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const grey = [];
  for (let i = 0; i < image.data.length; i += 4) {
    grey.push(0.299 * image.data[i] + 0.587 * image.data[i + 1] + 0.114 * image.data[i + 2]);
  }
  const invert = grey.reduce((a, b) => a + b, 0) / grey.length > 127;
  grey.forEach((g, j) => image.data.fill(invert ? 255 - g : g, 4 * j, 4 * j + 3));
  ctx.putImageData(image, 0, 0);
}

// ---- pads -> model input, the way MNIST was made: the digit's bounding box scaled into a 20x20 box
// (of 28x28; in proportion for other sizes), then shifted so its centre of mass sits in the middle.

function brightness(ctx, w, h) {
  const data = ctx.getImageData(0, 0, w, h).data;
  const values = new Float32Array(w * h);
  for (let i = 0; i < values.length; i++) values[i] = data[4 * i] / 255;
  return values;
}

// The pad as the model's (C, H, W) pixels: its centre cropped to the model's aspect ratio and scaled.
function pictureToModel(canvas) {
  const [C, H, W] = state.model.manifest.image_shape;
  const out = document.createElement("canvas");
  Object.assign(out, { width: W, height: H });
  const octx = out.getContext("2d");
  const scale = Math.min(canvas.width / W, canvas.height / H);
  const [cw, ch] = [W * scale, H * scale];
  octx.imageSmoothingQuality = "high";
  octx.drawImage(canvas, (canvas.width - cw) / 2, (canvas.height - ch) / 2, cw, ch, 0, 0, W, H);
  const data = octx.getImageData(0, 0, W, H).data;
  const plane = (c) =>
    Array.from({ length: H }, (_, y) =>
      Array.from({ length: W }, (_, x) => {
        const i = 4 * (y * W + x);
        return C === 3 ? data[i + c] / 255 : (0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]) / 255;
      }),
    );
  return { canvas: out, array: C === 1 ? plane(0) : [0, 1, 2].map(plane) };
}

function toModel(canvas) {
  if (!digits(state.model)) return pictureToModel(canvas);
  const [, H, W] = state.model.manifest.image_shape;
  const big = brightness(canvas.getContext("2d"), canvas.width, canvas.height);
  let [x0, y0, x1, y1] = [Infinity, Infinity, -1, -1];
  big.forEach((v, i) => {
    if (v <= 0.05) return;
    const [x, y] = [i % canvas.width, Math.floor(i / canvas.width)];
    [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  });
  const fitted = document.createElement("canvas");
  Object.assign(fitted, { width: W, height: H });
  const fctx = fitted.getContext("2d");
  fctx.fillStyle = "#000";
  fctx.fillRect(0, 0, W, H);
  if (x1 >= 0) {
    const [bw, bh] = [x1 - x0 + 1, y1 - y0 + 1];
    const scale = (Math.min(W, H) * (20 / 28)) / Math.max(bw, bh);
    fctx.imageSmoothingEnabled = true;
    fctx.imageSmoothingQuality = "high";
    fctx.drawImage(canvas, x0, y0, bw, bh, (W - bw * scale) / 2, (H - bh * scale) / 2, bw * scale, bh * scale);
  }
  // centre of mass -> the middle
  const small = brightness(fctx, W, H);
  let [mass, mx, my] = [0, 0, 0];
  small.forEach((v, i) => {
    mass += v;
    mx += v * ((i % W) + 0.5);
    my += v * (Math.floor(i / W) + 0.5);
  });
  const out = document.createElement("canvas");
  Object.assign(out, { width: W, height: H });
  const octx = out.getContext("2d");
  octx.fillStyle = "#000";
  octx.fillRect(0, 0, W, H);
  const [dx, dy] = mass > 0 ? [Math.round(W / 2 - mx / mass), Math.round(H / 2 - my / mass)] : [0, 0];
  octx.drawImage(fitted, dx, dy);
  const pixels = brightness(octx, W, H);
  const rows = Array.from({ length: H }, (_, y) => Array.from(pixels.subarray(y * W, (y + 1) * W)));
  const channels = state.model.manifest.image_shape[0];
  return { canvas: out, array: channels === 1 ? rows : Array(channels).fill(rows) };
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
}

async function sample() {
  const body = {
    n: Number($("n").value),
    seed: Number($("seed").value),
    temperature: Number($("temperature").value),
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
    temperature: Number($("temperature").value),
    labels: labels(),
    codes: state.codes,
    mask,
  };
  showUrl("completion", await api("sample", body, { png: true }));
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
