// The HTTP side of the page: the v1 contract (docs/http-contract.md) and nothing about the DOM.

/** An error response of the service, carrying its RFC 9457 problem (type, title, status, detail). */
export class ProblemError extends Error {
  constructor(problem) {
    super(`${problem.title || "Error"}${problem.detail ? `: ${problem.detail}` : ""}`);
    this.problem = problem;
    this.slug = String(problem.type || "").replace("urn:tadm:problem:", "");
  }
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

let apiKey = sessionStorage.getItem("tadm-api-key") || "";

/** Remember the API key for this tab; only sent on requests when set. */
export function setApiKey(key) {
  apiKey = key.trim();
  sessionStorage.setItem("tadm-api-key", apiKey);
}

export function getApiKey() {
  return apiKey;
}

function authHeaders() {
  return apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
}

async function problemFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy error page): fall through to a synthetic problem
  }
  if (body && body.type) return new ProblemError(body);
  return new ProblemError({ type: "about:blank", title: response.statusText || "HTTP error",
    status: response.status, detail: `HTTP ${response.status}` });
}

/** fetch() that throws a ProblemError for error statuses. */
export async function request(url, options = {}) {
  const response = await fetch(url, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok) throw await problemFrom(response);
  return response;
}

export async function getJSON(url) {
  return (await request(url)).json();
}

export const getInfo = () => getJSON("/v1/info");
export const listImages = (limit) => getJSON(`/v1/images?limit=${limit}`).then((body) => body.items);
export const getStats = () => getJSON("/v1/stats");
export const getImage = (id) => getJSON(`/v1/images/${encodeURIComponent(id)}`);
export const deleteImage = (id) => request(`/v1/images/${encodeURIComponent(id)}`, { method: "DELETE" });

/**
 * Upload a file with XMLHttpRequest, because fetch() cannot report upload progress.
 * Resolves to {status, body}: 201 + Image, or 202 + Job.
 */
export function uploadImage(file, scale, onProgress, serverWait = 10) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/images?scale=${encodeURIComponent(scale)}`);
    xhr.setRequestHeader("Prefer", `wait=${serverWait}`);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve({ status: xhr.status, body });
      } else if (body && body.type) {
        reject(new ProblemError(body));
      } else {
        reject(new ProblemError({ type: "about:blank", title: "Upload failed", status: xhr.status,
          detail: `HTTP ${xhr.status}` }));
      }
    };
    xhr.onerror = () => reject(new Error("the upload could not reach the service"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

/**
 * Follow a job to its end over Server-Sent Events (`event: job`), calling onUpdate with every state.
 * Falls back to polling GET /v1/jobs/{id} if the event stream fails (a proxy that buffers, say).
 * Resolves with the succeeded job; rejects with a ProblemError if it failed or was cancelled.
 */
export function watchJob(job, onUpdate) {
  return new Promise((resolve, reject) => {
    const finish = (state) => {
      onUpdate(state);
      if (state.status === "succeeded") resolve(state);
      else reject(new ProblemError(state.error || { type: "urn:tadm:problem:job-failed",
        title: `Job ${state.status}`, status: 500, detail: `job ${state.id} ended ${state.status}` }));
    };
    if (TERMINAL.has(job.status)) {
      finish(job);
      return;
    }
    onUpdate(job);
    const source = new EventSource(`/v1/jobs/${encodeURIComponent(job.id)}/events`);
    let ended = false;
    source.addEventListener("job", (event) => {
      const state = JSON.parse(event.data);
      if (TERMINAL.has(state.status)) {
        ended = true;
        source.close();
        finish(state);
      } else {
        onUpdate(state);
      }
    });
    source.onerror = () => {
      if (ended) return;
      // EventSource would reconnect forever; poll instead so that a broken stream cannot hang the page.
      source.close();
      pollJob(job.id, onUpdate).then(finish, reject);
    };
  });
}

async function pollJob(id, onUpdate, intervalMs = 500) {
  for (;;) {
    const state = await getJSON(`/v1/jobs/${encodeURIComponent(id)}`);
    if (TERMINAL.has(state.status)) return state;
    onUpdate(state);
    await new Promise((done) => setTimeout(done, intervalMs));
  }
}

/** The reconstruction URL of an image in a given format, keeping any signature the service put on it. */
export function fullUrl(image, format = "png") {
  const url = new URL(image.full_url, window.location.href);
  if (!url.searchParams.has("format") && !url.searchParams.has("sig")) url.searchParams.set("format", format);
  return url.toString();
}

/**
 * Ask for a reconstruction: resolves to a Blob, straight away when cached, else after following the job
 * (onUpdate gets every job state, for a progress bar).
 */
export async function reconstruct(image, onUpdate) {
  const response = await request(fullUrl(image));
  if (response.status !== 202) return response.blob();
  const job = await watchJob(await response.json(), onUpdate);
  return (await request(job.result_url)).blob();
}
