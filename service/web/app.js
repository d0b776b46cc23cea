// The page: upload → thumbnail → reconstruct → compare. HTTP lives in api.js.
import * as api from "./api.js";

const $ = (id) => document.getElementById(id);
const RECENT_LIMIT = 12;
const INFO_REFRESH_MS = 5000; // workers come and go (a restart, a scale-up): the banner follows them

// Originals exist only in this tab: the service keeps the thumbnail, never the uploaded file.
const originals = new Map(); // image id → object URL of the file uploaded from this tab
let current = null; // the Image shown
let reconstructionUrl = null;
let liveWorkers = null; // from the last /v1/info; null until known

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

function setStatus(id, text, isError = false) {
  const element = $(id);
  element.textContent = text;
  element.classList.toggle("error", isError);
}

function describeError(error) {
  if (error instanceof api.ProblemError) return `${error.message} [${error.slug}]`;
  return error.message || String(error);
}

// ---- the model labels and figures, the untrained-model warning and the preview notice --------------------------

async function showModelInfo() {
  let info;
  try {
    info = await api.getInfo();
  } catch (error) {
    setStatus("model-label", `Could not read /v1/info: ${describeError(error)}`, true);
    return;
  }
  liveWorkers = info.workers;
  const models = info.models || [];
  const labels = models.map((m) => `model ${m.model_id} · preset ${m.preset} · ${m.scale}×` +
    (m.trained ? "" : " · untrained") + (m.quality && m.quality.preview ? " · preview" : ""));
  $("model-label").textContent =
    `${labels.join("; ") || "no model registered"} — ${info.workers} live worker${info.workers === 1 ? "" : "s"}`;

  // A released model's measured figures (a preview's are in the notice below, with the bar it has not reached),
  // from the quality fields rather than by editing the server's summary sentence.
  const measured = models.filter((m) => m.quality && !m.quality.preview).map(({ scale, quality: q }) =>
    `${scale}×, measured: ${q.psnr_y.toFixed(2)} dB PSNR-Y on ${q.evaluation_set} (${q.images} photos) against ` +
    `bicubic's ${q.bicubic_psnr_y.toFixed(2)} dB; the quality target is ${q.release_psnr_y.toFixed(2)} dB.`);
  $("model-quality").textContent = measured.join(" ");
  $("model-quality").hidden = measured.length === 0;

  const untrained = models.filter((m) => m.preset === "tiny" || !m.trained);
  const notes = [];
  if (info.warning) notes.push(info.warning);
  if (info.notice) notes.push(`${info.notice}.`);
  if (untrained.length && !info.warning) {
    notes.push(`The ${untrained.map((m) => m.preset).join(", ")} model has random, untrained weights: ` +
      "reconstructions will be noise. Only the plumbing is real on this server.");
  }
  // What the API does meanwhile: an upload needs a live worker's model (503 not-ready without one), while a
  // reconstruction of a stored image is queued and runs when a worker is back.
  if (info.workers === 0) {
    notes.push("No live worker right now: new uploads are refused until one is back; reconstructions of stored " +
      "images wait in the queue and run then.");
  }
  $("model-warning").textContent = notes.join(" ");
  $("model-warning").hidden = notes.length === 0;

  const scales = [...new Set(models.map((m) => m.scale))].sort((a, b) => a - b);
  const select = $("scale-select");
  const chosen = select.value; // kept across refreshes while it is still offered
  select.replaceChildren(...(scales.length ? scales : [16, 32]).map((s) => new Option(`${s}×`, s)),
    new Option("auto (most compact that meets the quality target)", "auto"));
  if ([...select.options].some((option) => option.value === chosen)) select.value = chosen;
}

// ---- upload ----------------------------------------------------------------------------------------------------

async function upload(file) {
  $("upload-progress").value = 0;
  setStatus("upload-status", `Uploading ${file.name} (${formatBytes(file.size)})…`);
  try {
    const { status, body } = await api.uploadImage(file, $("scale-select").value, (fraction) => {
      $("upload-progress").value = fraction;
    });
    $("upload-progress").value = 1;
    let image = body;
    if (status === 202) {
      setStatus("upload-status", "Uploaded; making the thumbnail…");
      const job = await api.watchJob(body, (state) => setStatus("upload-status",
        `Making the thumbnail: ${state.status} ${Math.round(state.progress * 100)} %`));
      image = await api.getImage(job.image_id);
    }
    originals.set(image.id, URL.createObjectURL(file));
    setStatus("upload-status", `Stored as ${image.id}.`);
    showImage(image);
    refreshRecent();
  } catch (error) {
    $("upload-progress").value = 0; // the bar shows what was stored, and nothing was
    setStatus("upload-status", `Upload failed: ${describeError(error)}`, true);
    if (error instanceof api.ProblemError && error.slug === "not-ready") showModelInfo();
  }
}

function wireDropZone() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (event) => {
    const [file] = event.target.files;
    event.target.value = ""; // so that choosing the same file again uploads it again
    if (file) upload(file);
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer.files.length) upload(event.dataTransfer.files[0]);
  });
}

// ---- the stored image ------------------------------------------------------------------------------------------

function showImage(image) {
  current = image;
  $("image-section").hidden = false;
  const thumb = $("thumbnail");
  thumb.onload = () => {
    // The attributes pin the real pixel size, so CSS can never stretch it.
    thumb.width = thumb.naturalWidth;
    thumb.height = thumb.naturalHeight;
    $("thumbnail-caption").textContent = `${thumb.naturalWidth}×${thumb.naturalHeight} px, actual size`;
  };
  thumb.removeAttribute("width");
  thumb.removeAttribute("height");
  thumb.src = image.thumbnail_url;

  const facts = [
    ["Original", `${image.width}×${image.height} px, ${formatBytes(image.original_bytes)} (not kept)`],
    ["Thumbnail", `${formatBytes(image.thumbnail_bytes)} at ${image.scale}× per side`],
    ["Storage saved", `${(image.saving * 100).toFixed(2)} % (${Math.round(image.original_bytes /
      Math.max(1, image.thumbnail_bytes))}× smaller)`],
    ["Model", image.model_id],
    ...qualityFacts(image),
  ];
  $("image-facts").replaceChildren(...facts.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    return [dt, dd];
  }));

  $("compare").hidden = true;
  $("reconstruct-progress").value = 0;
  setStatus("reconstruct-status", "");
  document.querySelectorAll("#recent-list li").forEach((li) => {
    li.classList.toggle("current", li.dataset.id === image.id);
  });
}

// What verification measured before the original was deleted (none when the service stores unverified).
function qualityFacts(image) {
  const q = image.quality;
  if (!q) return [["Verified", "no (stored without verification)"]];
  // A thumbnail pulled in to the deviation bound is no longer the model's as made: say so, and by how much.
  const pulledIn = `tadm thumbnail, pulled in where it strayed from a plain one (now within ` +
    `${q.thumbnail_deviation.toFixed(1)} levels)`;
  const method = q.method === "plain"
    ? "plain thumbnail (bicubic gives this photo back as well as the model, or better)"
    : q.thumbnail_pulled_in ? pulledIn : "tadm thumbnail";
  const msssim = q.ms_ssim_y === null ? "–" : q.ms_ssim_y.toFixed(4);
  return [
    ["Stored as", image.auto ? `${method}, scale chosen by the quality target` : method],
    ["Reconstruction", `${q.psnr_y.toFixed(2)} dB PSNR-Y · MS-SSIM-Y ${msssim} · SSIMULACRA2 ` +
      `${q.ssimulacra2.toFixed(1)}`],
    ["Bicubic, same size", `${q.bicubic_psnr_y.toFixed(2)} dB PSNR-Y`],
    ...(q.method === "plain" ? [] : [["Colour correction", colourCorrection(q)]]),
  ];
}

// The sender's colour corrections stored with a tadm thumbnail (the record's colour_map and colour_lattice).
function colourCorrection(q) {
  const parts = [];
  if (q.colour_map) parts.push("a colour map");
  if (q.colour_lattice) parts.push(`a ${q.colour_lattice} lattice of colour maps`);
  return parts.length ? parts.join(" and ") : "none";
}

// ---- reconstruction and comparison -----------------------------------------------------------------------------

async function reconstructCurrent() {
  const image = current;
  $("reconstruct-button").disabled = true;
  $("reconstruct-progress").value = 0;
  setStatus("reconstruct-status", "Asking for the reconstruction…");
  try {
    const blob = await api.reconstruct(image, (job) => {
      $("reconstruct-progress").value = job.progress;
      const waiting = liveWorkers === 0 ? " (no live worker: it runs when one is back)" : "";
      setStatus("reconstruct-status", `${job.status} ${Math.round(job.progress * 100)} %${waiting}`);
    });
    if (current !== image) return; // the user moved on to another image meanwhile
    $("reconstruct-progress").value = 1;
    setStatus("reconstruct-status", `Done: ${formatBytes(blob.size)} PNG.`);
    showComparison(image, blob);
  } catch (error) {
    $("reconstruct-progress").value = 0;
    setStatus("reconstruct-status", `Reconstruction failed: ${describeError(error)}`, true);
  } finally {
    $("reconstruct-button").disabled = false;
  }
}

function showComparison(image, blob) {
  if (reconstructionUrl) URL.revokeObjectURL(reconstructionUrl);
  reconstructionUrl = URL.createObjectURL(blob);
  const original = originals.get(image.id);
  // Without the file from this tab, the honest stand-in is the thumbnail itself, upscaled by the browser.
  $("original").src = original || image.thumbnail_url;
  $("left-label").textContent = original ? "Original (your file)" : "Thumbnail, browser-upscaled (no original kept)";
  $("reconstruction").src = reconstructionUrl;
  $("download-link").href = reconstructionUrl;
  $("download-link").download = `${image.id}.png`;
  $("compare").hidden = false;
  applyZoom();
}

function applyZoom() {
  if (!current) return;
  const stage = $("stage");
  const side = $("layout-select").value === "side";
  const panes = side ? 2 : 1;
  const choice = $("zoom-select").value;
  const zoom = choice === "fit" ? Math.min(1, $("compare").clientWidth / (panes * current.width)) : Number(choice);
  stage.style.width = `${Math.round(panes * current.width * zoom)}px`;
  stage.style.height = `${Math.round(current.height * zoom)}px`;
  stage.classList.toggle("zoomed", zoom > 1);
  stage.classList.toggle("side", side);
  $("split-slider").disabled = side;
}

function applySplit() {
  $("stage").style.setProperty("--split", `${$("split-slider").value}%`);
}

// Dragging on the images moves the divider too (the slider stays the keyboard-accessible control).
function wireStageDrag() {
  const stage = $("stage");
  const follow = (event) => {
    const box = stage.getBoundingClientRect();
    $("split-slider").value = Math.round(Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)) * 100);
    applySplit();
  };
  stage.addEventListener("pointerdown", (event) => {
    if (stage.classList.contains("side")) return;
    stage.setPointerCapture(event.pointerId);
    follow(event);
  });
  stage.addEventListener("pointermove", (event) => {
    if (stage.hasPointerCapture(event.pointerId)) follow(event);
  });
}

// ---- recent images ---------------------------------------------------------------------------------------------

async function refreshStats() {
  try {
    const stats = await api.getStats();
    $("store-stats").textContent = stats.images
      ? `${stats.images} images: ${formatBytes(stats.original_bytes)} uploaded, ${formatBytes(stats.stored_bytes)}` +
        ` stored (${(stats.saving * 100).toFixed(2)} % saved); ${stats.verified} verified, ${stats.fallbacks}` +
        " stored as plain thumbnails"
      : "";
  } catch {
    $("store-stats").textContent = "";
  }
}

async function refreshRecent() {
  refreshStats();
  let images;
  try {
    images = await api.listImages(RECENT_LIMIT);
  } catch (error) {
    setStatus("recent-empty", `Could not list images: ${describeError(error)}`, true);
    $("recent-empty").hidden = false;
    return;
  }
  $("recent-empty").hidden = images.length > 0;
  $("recent-list").replaceChildren(...images.map(recentItem));
}

function recentItem(image) {
  const li = document.createElement("li");
  li.dataset.id = image.id;
  li.classList.toggle("current", current?.id === image.id);
  const thumb = document.createElement("img");
  thumb.src = image.thumbnail_url;
  thumb.alt = `thumbnail of ${image.id}`;
  thumb.loading = "lazy";
  const caption = document.createElement("div");
  const quality = image.quality ? ` · ${image.quality.psnr_y.toFixed(1)} dB${image.quality.method === "plain"
    ? " (plain)" : ""}` : "";
  caption.textContent = `${image.width}×${image.height} · ${image.scale}× · −${(image.saving * 100).toFixed(1)} %` +
    quality;
  const open = Object.assign(document.createElement("button"), { type: "button", textContent: "Open" });
  open.addEventListener("click", () => showImage(image));
  const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Delete" });
  remove.addEventListener("click", async () => {
    try {
      await api.deleteImage(image.id);
      if (current?.id === image.id) $("image-section").hidden = true;
      refreshRecent();
    } catch (error) {
      setStatus("recent-empty", `Delete failed: ${describeError(error)}`, true);
      $("recent-empty").hidden = false;
    }
  });
  const actions = document.createElement("div");
  actions.className = "actions";
  actions.append(open, remove);
  li.append(thumb, caption, actions);
  return li;
}

// ---- start -----------------------------------------------------------------------------------------------------

$("api-key").value = api.getApiKey();
$("api-key").addEventListener("change", (event) => api.setApiKey(event.target.value));
$("api-key-form").addEventListener("submit", (event) => event.preventDefault());
$("reconstruct-button").addEventListener("click", reconstructCurrent);
$("split-slider").addEventListener("input", applySplit);
$("zoom-select").addEventListener("change", applyZoom);
$("layout-select").addEventListener("change", applyZoom);
window.addEventListener("resize", applyZoom);
wireDropZone();
wireStageDrag();
showModelInfo();
setInterval(showModelInfo, INFO_REFRESH_MS);
refreshRecent();
