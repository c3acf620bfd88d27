"use strict";
// The demo page's drawing pads, and what a pad's picture becomes as the model's input (pixels of its shape and
// colour). Plain JavaScript, loaded before app.js, whose `state` and `digits` it reads when called.

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
