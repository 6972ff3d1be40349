// httap.js: a small client for an HTTaP server, for browser pages. An ES module with
// no dependencies: `import { HTTaP } from "/httap.js"`.
//
// Requests go out one at a time, in order (HTTaP is lock-step). Between them it pings
// `/?ping` before the session times out, and tells the page what happens to the link
// with events: `session` (the HTTaP-Session id changed: the server or the link was
// restarted), `busy` (another client holds the hardware), `reconnecting` (the device
// cannot be reached) and `connected` (it can again).

const RETRY = 1; // seconds before a watch asks again after an error
const MAX_BACKOFF = 5; // seconds between pings at most, while the device is unreachable

export class HTTaPError extends Error {
  constructor(status, body = {}) {
    super(body.message || `HTTP ${status}`);
    this.name = "HTTaPError";
    this.status = status; // 0: the device could not be reached
    this.error = body.error || "http-error";
    this.body = body;
  }
}

export class HTTaP extends EventTarget {
  constructor(baseUrl = "", { margin = 3 } = {}) {
    super();
    this.base = baseUrl.replace(/\/$/, "");
    this.margin = margin;
    this.session = null;
    this.timeout = null; // the server's inactivity timeout, from /?ping or /?
    this.failures = 0; // network failures in a row
    this.queue = Promise.resolve();
    this.watches = new Set();
    this.closed = false;
    this.pingTimer = null;
    this.ping();
  }

  get(path) {
    return this.send("GET", path);
  }

  set(pathOrBatch, value) {
    if (typeof pathOrBatch === "object") return this.send("POST", "gpio", JSON.stringify(pathOrBatch));
    return this.send("POST", pathOrBatch, JSON.stringify(value));
  }

  call(path, body, { method = "POST" } = {}) {
    return this.send(method, path, body === undefined ? undefined : JSON.stringify(body));
  }

  read(port, { wait, until, count } = {}) {
    return this.send("GET", serialPath(port, { wait, until, count }));
  }

  write(port, data, { until, wait } = {}) {
    return this.send("POST", serialPath(port, { until, wait }), data);
  }

  // The simulated board only (discovery's `Simulated`): sets the wire of input `pin` to
  // `value` (0 or 1), as a button or a sensor would; a real board answers 409.
  drive(pin, value) {
    return this.send("POST", `gpio/${encodeURIComponent(pin)}`, JSON.stringify({ drive: value }));
  }

  // Long-polls `path` (a pin) on its own requests, outside the queue: `callback(state)`
  // runs with the current state, then on every change. Returns a function that stops it.
  watch(path, callback, { wait = 20 } = {}) {
    const control = new AbortController();
    const stop = () => {
      control.abort();
      this.watches.delete(stop);
    };
    this.watches.add(stop);
    (async () => {
      let value;
      while (!control.signal.aborted) {
        const query = value === undefined ? path : `${path}&wait=${wait}&value=${value}`;
        try {
          const state = await this.fetch("GET", query, undefined, control.signal);
          if (state.value !== value) {
            value = state.value;
            callback(state);
          }
        } catch {
          if (!control.signal.aborted) await sleep(RETRY);
        }
      }
    })();
    return stop;
  }

  close() {
    this.closed = true;
    clearTimeout(this.pingTimer);
    for (const stop of [...this.watches]) stop();
  }

  ping() {
    this.send("GET", "ping").catch(() => {});
  }

  send(method, path, body) {
    const run = () => this.fetch(method, path, body);
    const reply = this.queue.then(run, run);
    this.queue = reply.catch(() => {});
    return reply;
  }

  async fetch(method, path, body, signal) {
    const queued = signal === undefined;
    let response;
    try {
      response = await fetch(`${this.base}/?${path}`, { method, body, signal, cache: "no-store" });
    } catch (err) {
      if (!signal?.aborted) this.lost(queued);
      throw new HTTaPError(0, { error: "unreachable", message: `the device cannot be reached (${err.message})` });
    }
    if (this.failures > 0) {
      this.failures = 0;
      this.emit("connected");
    }
    const data = await parse(response);
    if (queued) this.reached(response, data);
    if (response.ok) return data;
    const error = data !== null && typeof data === "object" ? data : { message: String(data || "") };
    if (response.status === 503 && error.error === "busy") this.emit("busy", error);
    throw new HTTaPError(response.status, error);
  }

  // A reply to a queued request: note the session, and ping again before it times out.
  reached(response, data) {
    const id = response.headers.get("HTTaP-Session");
    if (id && id !== this.session) {
      const previous = this.session;
      this.session = id;
      if (previous !== null) this.emit("session", { id, previous });
    }
    if (typeof data?.Timeout === "number") this.timeout = data.Timeout;
    if (this.timeout !== null) this.schedule(Math.max(1, this.timeout - this.margin));
  }

  // The device cannot be reached: ping it with back-off (the pings set the pace, so a
  // watch that fails too does not push the next ping back).
  lost(queued) {
    this.failures += 1;
    if (this.failures === 1) this.emit("reconnecting");
    if (queued || this.failures === 1) this.schedule(Math.min(MAX_BACKOFF, 0.25 * 2 ** this.failures));
  }

  schedule(seconds) {
    clearTimeout(this.pingTimer);
    if (!this.closed) this.pingTimer = setTimeout(() => this.ping(), seconds * 1000);
  }

  emit(type, detail = null) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function serialPath(port, params) {
  const query = Object.entries(params)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `&${key}=${encodeURIComponent(value)}`);
  return `serial/${encodeURIComponent(port)}${query.join("")}`;
}

async function parse(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.startsWith("application/json") ? response.json() : response.text();
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));
