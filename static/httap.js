// httap.js: a small client for an HTTaP server, for browser pages. An ES module with
// no dependencies: `import { HTTaP } from "/httap.js"`.
//
// Requests go out one at a time, in order (HTTaP is lock-step). Between them it pings
// `/?ping` before the session times out. `events()` keeps a server-sent event stream
// (`GET /?events`) open, through which every pin's state stays current; `watch()` is
// built on it, and long-polls only where the browser has no EventSource.
//
// It tells the page what happens to the link with events on the HTTaP object:
// `connected` (requests and streams get through), `reconnecting` (a request cannot reach
// the device, or a stream dropped and is being resumed), `stale` (a stream was refused:
// the states it keeps no longer follow the device until it is opened again), `session`
// (the HTTaP-Session id changed: the server or the link was restarted), `busy` (a write
// was refused: another client holds the hardware) and `lease` (who holds it, from the
// stream).

const RETRY = 1; // seconds before a long-poll asks again after an error
const MAX_BACKOFF = 5; // seconds between pings at most, while the device is unreachable
const MAX_REOPEN = 30; // seconds at most before a refused stream is opened again
const TYPES = ["gpio", "serial", "app", "lease"]; // what a stream asks for by default
const EVENTS = ["state", ...TYPES]; // the stream's event names

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
    this.sessions = new Set(); // every HTTaP-Session id of this page's own replies
    this.timeout = null; // the server's inactivity timeout, from /?ping or /?
    this.failures = 0; // network failures in a row
    this.status = "connected"; // or "reconnecting" or "stale": the last one emitted
    this.queue = Promise.resolve();
    this.watches = new Set();
    this.streams = new Map(); // query -> EventStream, one per filter
    this.closed = false;
    this.pingTimer = null;
    this.ping();
  }

  // True where the browser has EventSource: events() works and watch() uses it.
  get live() {
    return typeof EventSource === "function";
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

  // The bytes received from serial `port`, as text (UTF-8), or with `bytes` as a
  // Uint8Array. `wait: 0` takes what is there without waiting.
  read(port, { wait, until, count, bytes = false } = {}) {
    return this.send("GET", serialPath(port, { wait, until, count }), undefined, bytes);
  }

  write(port, data, { until, wait } = {}) {
    return this.send("POST", serialPath(port, { until, wait }), data);
  }

  // The simulated board only (discovery's `Simulated`): sets the wire of input `pin` to
  // `value` (0 or 1), as a button or a sensor would; a real board answers 409.
  drive(pin, value) {
    return this.send("POST", `gpio/${encodeURIComponent(pin)}`, JSON.stringify({ drive: value }));
  }

  // Sends `body` (a Blob or File) with `method` to `/?path` and resolves to the reply
  // (JSON, or null for 204), calling `progress(sent, total)` (bytes) as the body leaves:
  // XMLHttpRequest's upload progress events, which fetch() does not give. Outside the
  // queue, on a connection of its own: an upload may take minutes, and the page's
  // other requests go on meanwhile.
  upload(path, body, { method = "PUT", progress } = {}) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open(method, `${this.base}/?${path}`);
      if (progress) request.upload.addEventListener("progress", (event) => progress(event.loaded, event.total));
      request.addEventListener("load", () => {
        const type = request.getResponseHeader("Content-Type") || "";
        let data = request.status === 204 ? null : request.responseText;
        if (type.startsWith("application/json")) data = JSON.parse(data);
        if (request.status >= 200 && request.status < 300) resolve(data);
        else reject(new HTTaPError(request.status, typeof data === "object" && data ? data : { message: data }));
      });
      request.addEventListener("error", () =>
        reject(new HTTaPError(0, { error: "unreachable", message: "the upload did not reach the device" })));
      request.send(body);
    });
  }

  // The files stored on the device (`uploads`): their list, and removing one. A file
  // itself is at `/?files/NAME` (a link can download it).
  files() {
    return this.send("GET", "files");
  }

  removeFile(name) {
    return this.send("DELETE", `files/${encodeURIComponent(name)}`);
  }

  // The web app itself: its version (`GET /?app`), an update from a .tar.gz or .zip
  // (served from the next request on), and the switch back to the previous version.
  app() {
    return this.send("GET", "app");
  }

  updateApp(archive, { progress } = {}) {
    return this.upload("app", archive, { progress });
  }

  rollback() {
    return this.send("POST", "app/rollback");
  }

  // The event stream `GET /?events`, filtered by `types` (of "gpio", "serial", "app",
  // "lease"; all of them by default) and `pins` (names): one EventStream per filter,
  // opened on the first call and kept until close(). Throws where the browser has no
  // EventSource (see `live`).
  events({ types = TYPES, pins } = {}) {
    if (!this.live) throw new Error("this browser has no EventSource: use watch(), which long-polls");
    const query = [["types", types], ["pins", pins]]
      .filter(([, names]) => names !== undefined)
      .map(([key, names]) => `&${key}=${[names].flat().map(encodeURIComponent).join(",")}`)
      .join("");
    let stream = this.streams.get(query);
    if (stream === undefined) {
      stream = new EventStream(this, query);
      this.streams.set(query, stream);
    }
    return stream;
  }

  // `callback(state)` with the state of the pin `path` ("gpio/NAME" or "gpio/17") as
  // soon as it is known, then on every change. Through the unfiltered event stream
  // (shared by every watch), or, without EventSource, by long-polling `GET
  // /?path&wait=S&value=V` on its own requests. Returns a function that stops it.
  watch(path, callback, { wait = 20 } = {}) {
    if (!this.live) return this.longPoll(path, callback, wait);
    const stream = this.events();
    const key = decodeURIComponent(path.replace(/^gpio\//, ""));
    let last;
    const deliver = () => {
      const state = stream.pin(key);
      const seen = JSON.stringify([state?.value, state?.pwm]);
      if (state !== undefined && seen !== last) {
        last = seen;
        callback(state);
      }
    };
    const stop = () => {
      for (const type of ["state", "gpio"]) stream.removeEventListener(type, deliver);
      this.watches.delete(stop);
    };
    for (const type of ["state", "gpio"]) stream.addEventListener(type, deliver);
    this.watches.add(stop);
    deliver();
    return stop;
  }

  longPoll(path, callback, wait) {
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
    for (const stream of [...this.streams.values()]) stream.close();
  }

  ping() {
    this.send("GET", "ping").catch(() => {});
  }

  send(method, path, body, bytes = false) {
    const run = () => this.fetch(method, path, body, undefined, bytes);
    const reply = this.queue.then(run, run);
    this.queue = reply.catch(() => {});
    return reply;
  }

  async fetch(method, path, body, signal, bytes = false) {
    const queued = signal === undefined;
    let response;
    try {
      response = await fetch(`${this.base}/?${path}`, { method, body, signal, cache: "no-store" });
    } catch (err) {
      if (!signal?.aborted) this.lost(queued);
      throw new HTTaPError(0, { error: "unreachable", message: `the device cannot be reached (${err.message})` });
    }
    if (this.failures > 0) {
      // back: a stream that looked open meanwhile may be dead, and cannot know it
      this.failures = 0;
      for (const stream of this.streams.values()) stream.reopen();
      this.update();
    }
    const data = bytes && response.ok ? new Uint8Array(await response.arrayBuffer()) : await parse(response);
    if (queued) this.reached(response, data);
    if (response.ok) return data;
    const error = data !== null && typeof data === "object" ? data : { message: String(data || "") };
    if (response.status === 503 && error.error === "busy") this.emit("busy", error);
    throw new HTTaPError(response.status, error);
  }

  // A reply to a queued request: note the session, and ping again before it times out.
  reached(response, data) {
    const id = response.headers.get("HTTaP-Session");
    if (id && !this.sessions.has(Number(id))) {
      this.sessions.add(Number(id));
      // a write's lease event can come before its reply: is the holder this page now?
      for (const stream of this.streams.values()) if (stream.lease !== null) stream.leased(stream.lease);
    }
    if (id && id !== this.session) {
      const previous = this.session;
      this.session = id;
      if (previous !== null) {
        for (const stream of this.streams.values()) stream.recheck();
        this.emit("session", { id, previous });
      }
    }
    if (typeof data?.Timeout === "number") this.timeout = data.Timeout;
    if (this.timeout !== null) this.schedule(Math.max(1, this.timeout - this.margin));
  }

  // The device cannot be reached: ping it with back-off (the pings set the pace, so a
  // watch that fails too does not push the next ping back).
  lost(queued) {
    this.failures += 1;
    this.update();
    if (queued || this.failures === 1) this.schedule(Math.min(MAX_BACKOFF, 0.25 * 2 ** this.failures));
  }

  // The link's status, from the requests and the streams together; emitted on a change.
  update() {
    const streams = [...this.streams.values()].map((stream) => stream.status);
    let status = "connected";
    if (this.failures > 0 || streams.includes("reconnecting")) status = "reconnecting";
    else if (streams.includes("stale")) status = "stale";
    if (status !== this.status) {
      this.status = status;
      this.emit(status);
    }
  }

  schedule(seconds) {
    clearTimeout(this.pingTimer);
    if (!this.closed) this.pingTimer = setTimeout(() => this.ping(), seconds * 1000);
  }

  emit(type, detail = null) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// One `GET /?events` stream (HTTaP.events() makes them). It dispatches each event it
// receives as a CustomEvent of the same name (`state`, `gpio`, `serial`, `app`, `lease`)
// whose `detail` is the event's JSON data, and keeps:
// - `pins`: every pin's state by name, as `GET /?gpio` gives it, replaced by each
//   `state` event and updated by each `gpio` event (null before the first `state`);
// - `lease`: who holds the hardware, from `state` and `lease` events (null if unknown);
// - `status`: "connecting", "connected", "reconnecting" (EventSource resumes it by
//   itself with Last-Event-ID) or "stale" (the server refused it, e.g. 503 past
//   `limits.subscribers`: it is opened again after 2, 4, ... up to 30 s, and re-syncs).
export class EventStream extends EventTarget {
  constructor(dev, query) {
    super();
    this.dev = dev;
    this.query = query;
    this.pins = null;
    this.lease = null;
    this.client = null; // this page's address as the server sees it (the `state` event's)
    this.status = "connecting";
    this.lastId = null;
    this.resumed = false; // resumed by EventSource since the last `state`: maybe behind
    this.awaiting = true; // opened, and no `state` or error yet
    this.refusals = 0;
    this.source = null;
    this.timer = null;
    this.open();
  }

  open() {
    const source = new EventSource(`${this.dev.base}/?events${this.query}`);
    this.source = source;
    this.awaiting = true;
    source.addEventListener("open", () => {
      this.refusals = 0;
      this.set("connected");
    });
    source.addEventListener("error", () => this.dropped(source));
    for (const type of EVENTS) source.addEventListener(type, (event) => this.receive(type, event));
  }

  // The state of the pin `key`: its name, or its GPIO number in digits.
  pin(key) {
    const pins = this.pins ?? {};
    if (key in pins) return pins[key];
    return /^\d+$/.test(key) ? Object.values(pins).find((state) => state.gpio === Number(key)) : undefined;
  }

  receive(type, event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return; // not JSON: not an event of this protocol
    }
    this.lastId = event.lastEventId;
    if (type === "state") {
      this.pins = data.pins ?? {};
      this.resumed = this.awaiting = false;
      if ("client" in data) this.client = data.client;
      if ("lease" in data) this.leased(data.lease);
    } else if (type === "gpio" && this.pins !== null && typeof data.pin === "string") {
      const { pin, ...change } = data;
      this.pins[pin] = { ...this.pins[pin], ...change };
    } else if (type === "lease") {
      this.leased(data);
    }
    this.dispatchEvent(new CustomEvent(type, { detail: data }));
  }

  // Who holds the hardware; the HTTaP object tells the page with a `lease` event whose
  // detail says `held` (by someone) and `mine` (by this page's client).
  leased(lease) {
    this.lease = lease;
    const holder = lease?.holder ?? null;
    let mine = false;
    if (holder !== null) {
      mine = lease.exclusive === "connection" ? this.dev.sessions.has(holder.session) : holder.address === this.client;
    }
    this.dev.emit("lease", { held: holder !== null, mine, holder });
  }

  dropped(source) {
    if (source !== this.source) return;
    this.awaiting = false;
    if (source.readyState === EventSource.CLOSED) {
      // refused (not 200 text/event-stream): EventSource gives up; open it again later
      this.refusals += 1;
      this.set("stale");
      this.timer = setTimeout(() => this.reopen(), Math.min(MAX_REOPEN, 2 ** this.refusals) * 1000);
    } else {
      this.resumed = true;
      this.set("reconnecting");
    }
  }

  // The HTTaP-Session id changed. If this stream was cut since its last `state`, the
  // server may have restarted, and ids from before mean nothing to the new one: start
  // again from a fresh `state`.
  recheck() {
    if (!this.awaiting && (this.resumed || this.status === "reconnecting")) this.reopen();
  }

  reopen() {
    if (this.source === null) return; // closed
    clearTimeout(this.timer);
    this.source.close();
    this.open();
  }

  set(status) {
    this.status = status;
    this.dev.update();
  }

  close() {
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
    this.dev.streams.delete(this.query);
    this.dev.update();
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
