// The device console: every configured pin, the app's actions, the serial ports, a log of
// the events, and the loop's figures. Live: the page follows the event stream `/?events`
// (through httap.js), and long-polls only in a browser without EventSource.
import { HTTaP } from "./httap.js";

const dev = new HTTaP();
const stream = dev.live ? dev.events() : null; // null: no EventSource, watches long-poll
const $ = (id) => document.getElementById(id);
const STATS_EVERY = 2000; // ms
const HISTORY = 60; // points in the lateness chart
const LOG_LINES = 100; // events kept in the log
const TERMINAL_BYTES = 16384; // bytes kept per serial terminal
const WINDOW = 1000; // the runs of a task /?stats summarises (loop.py's WINDOW)
const STANDARD = ["files", "gpio", "events", "serial"]; // discovery's Services that are not actions
const ENDINGS = { LF: "\n", CR: "\r", "CR LF": "\r\n", none: "" };
let watches = []; // without EventSource: stop() of each input's long-poll
let shown = { layout: null, updates: {} }; // the pins on the page: names and modes, updaters
let simulated = false; // the simulated board (discovery's `Simulated`): inputs can be driven
let shownPorts = ""; // the serial ports and actions on the page, to rebuild only on a change
let shownActions = "";
const terminals = {}; // port name -> its terminal's read()

dev.addEventListener("busy", () => showBusy());
dev.addEventListener("lease", ({ detail }) => {
  const holder = detail.held ? `${detail.holder.address}, session ${detail.holder.session}` : null;
  if (detail.held && !detail.mine) showBusy(holder);
  else $("busy").hidden = true;
  log(holder ? `lease: held by ${holder}${detail.mine ? " (this page)" : ""}` : "lease: free");
});
for (const status of ["connected", "reconnecting", "stale"]) {
  dev.addEventListener(status, () => {
    $("reconnecting").hidden = status !== "reconnecting";
    $("stale").hidden = status !== "stale";
    $("controls").disabled = status === "reconnecting"; // no write goes out on a dead link
    log(`link: ${status}`);
  });
}
dev.addEventListener("session", setUp); // a new session: the server may have restarted

if (stream) {
  stream.addEventListener("state", () => {
    showPins(stream.pins);
    log(`state: ${Object.keys(stream.pins).length} pins`);
  });
  stream.addEventListener("gpio", ({ detail }) => {
    shown.updates[detail.pin]?.(stream.pins[detail.pin]);
    const setting = detail.pwm ? `pwm ${JSON.stringify(detail.pwm)}` : `= ${detail.value}`;
    log(`gpio ${detail.pin} ${setting}${detail.cause ? ` (${detail.cause})` : ""}`, detail.time);
  });
  stream.addEventListener("serial", ({ detail }) => {
    log(`serial ${detail.port}: ${detail.available} bytes available`);
    terminals[detail.port]?.();
  });
  stream.addEventListener("app", ({ detail }) => log(`app ${detail.name}: ${JSON.stringify(detail.data)}`));
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// The busy banner; `holder` ("ADDRESS, session N") when the stream said who it is.
function showBusy(holder) {
  const who = holder ? ` (${holder})` : "";
  $("busy").textContent = `Another client is driving${who}: your writes are refused until it lets go.`;
  $("busy").hidden = false;
}

function report(err) {
  // busy and unreachable have their banners; anything else is shown as it is
  if (err.error !== "busy" && err.status !== 0) $("error").textContent = err.message;
}

const write = (path, value) => attempt(() => dev.set(path, value));

// Sends a request (`request()`, a call of dev) and clears the banners (it got through:
// nobody else holds the hardware), or shows what failed; null on a failure.
async function attempt(request) {
  try {
    const reply = await request();
    $("busy").hidden = true;
    $("error").textContent = "";
    return reply;
  } catch (err) {
    report(err);
    return null;
  }
}

async function setUp() {
  try {
    const discovery = await dev.get("");
    $("device").textContent = discovery.ID;
    $("session").textContent = dev.session;
    simulated = discovery.Simulated === true;
    let pins = stream?.pins;
    if (!pins) {
      // no state from the stream yet (or ever, from a server without push): read them,
      // unless the stream's state came meanwhile, which is as new
      const read = (await dev.get("gpio")).pins;
      pins = stream?.pins ?? read;
    }
    showPins(pins);
    showActions((discovery.Services || []).filter((name) => !STANDARD.includes(name)));
    showPorts(discovery.Serial || []);
    showFiles((discovery.Services || []).includes("files"));
  } catch (err) {
    report(err);
  }
}

// A new state redraws nothing that is already there: it updates the values, and only a
// different set of pins (a new configuration) rebuilds the rows.
function showPins(pins) {
  const modes = Object.entries(pins).map(([name, { mode }]) => [name, mode]);
  const layout = JSON.stringify([simulated, modes]);
  if (layout !== shown.layout) {
    for (const stop of watches) stop();
    watches = [];
    shown = { layout, updates: {} };
    const rows = Object.entries(pins).map(([name, state]) => pinRow(name, state));
    $("pins").replaceChildren(...rows);
    $("no-pins").hidden = rows.length > 0;
  }
  for (const [name, state] of Object.entries(pins)) shown.updates[name]?.(state);
}

function pinRow(name, state) {
  const control = { out: outputSwitch, in: inputLamp, pwm: pwmControls }[state.mode](name);
  const label = element("span", {}, name, " ", element("small", {}, `GPIO ${state.gpio}, ${state.mode}`));
  return element("li", { "data-pin": name }, label, element("span", { class: "controls" }, ...control));
}

function outputSwitch(name) {
  const button = element("button", { type: "button", role: "switch", "aria-label": name });
  const show = ({ value }) => {
    button.setAttribute("aria-checked", String(value === 1));
    button.textContent = value ? "on" : "off";
  };
  shown.updates[name] = show;
  button.addEventListener("click", async () => {
    const next = button.getAttribute("aria-checked") === "true" ? 0 : 1;
    const reply = await write(`gpio/${name}`, next);
    if (reply) show(reply);
  });
  return [button, ...pulseControl(name)];
}

// A pulse: the output inverted for the given seconds, then restored (the reply comes
// when it is over; the switch shows both changes as they happen).
function pulseControl(name) {
  const seconds = element("input", {
    type: "number", min: 0.01, max: 60, step: 0.01, value: 0.2, "aria-label": `pulse ${name} seconds`,
  });
  const button = element("button", { type: "button", "aria-label": `pulse ${name}` }, "pulse");
  button.addEventListener("click", () => write(`gpio/${name}`, { pulse: Number(seconds.value) }));
  return [element("label", { class: "unit" }, seconds, "s"), button];
}

function inputLamp(name) {
  const lamp = element("output", { class: "lamp", "aria-label": name });
  const drive = simulated && driveButton(name);
  const show = ({ value }) => {
    lamp.textContent = value;
    lamp.classList.toggle("on", value === 1);
    if (drive) drive.show(value);
  };
  shown.updates[name] = show;
  if (stream === null) watches.push(dev.watch(`gpio/${name}`, show));
  return drive ? [drive.button, lamp] : [lamp];
}

// On the simulated board: a button that sets the input's wire to the other level.
function driveButton(name) {
  const button = element("button", { type: "button", class: "drive", "aria-label": `drive ${name}` });
  let next = 0;
  const show = (value) => {
    next = value === 1 ? 0 : 1;
    button.textContent = `drive ${next}`;
  };
  show(1);
  button.addEventListener("click", () => attempt(() => dev.drive(name, next)));
  return { button, show };
}

// A PWM pin: its duty (slider) and frequency (Hz). A value being edited is not replaced
// by an event until it is sent.
function pwmControls(name) {
  const slider = element("input", { type: "range", min: 0, max: 1, step: 0.01, "aria-label": name });
  const duty = element("output");
  const frequency = element("input", {
    type: "number", min: 0.01, max: 10000, step: "any", "aria-label": `${name} frequency`,
  });
  const editing = new Set();
  const showDuty = () => (duty.textContent = `${Math.round(slider.value * 100)} %`);
  shown.updates[name] = ({ pwm }) => {
    if (!pwm) return;
    if (!editing.has(slider)) slider.value = pwm.duty;
    if (!editing.has(frequency)) frequency.value = pwm.frequency;
    showDuty();
  };
  const send = async (control) => {
    const reply = await write(`gpio/${name}`, {
      pwm: { frequency: Number(frequency.value), duty: Number(slider.value) },
    });
    editing.delete(control);
    if (reply) shown.updates[name](reply);
  };
  for (const control of [slider, frequency]) {
    control.addEventListener("input", () => editing.add(control));
    control.addEventListener("change", () => send(control));
  }
  slider.addEventListener("input", showDuty);
  return [slider, duty, element("label", { class: "unit" }, frequency, "Hz")];
}

// The app's actions, by name (discovery's Services): a method, an optional JSON body,
// and the reply.
function showActions(names) {
  if (JSON.stringify(names) === shownActions) return;
  shownActions = JSON.stringify(names);
  $("actions").hidden = names.length === 0;
  $("action-list").replaceChildren(...names.map(actionForm));
}

function actionForm(name) {
  const method = element("select", { "aria-label": `method of ${name}` },
    ...["POST", "GET", "PUT", "DELETE", "PATCH"].map((m) => element("option", {}, m)));
  const body = element("input", { type: "text", "aria-label": `body of ${name}`, placeholder: "JSON body (optional)" });
  const reply = element("output", { "aria-label": `reply of ${name}` });
  const form = element("form", { class: "action" }, element("strong", {}, name), method, body,
    element("button", { "aria-label": `call ${name}` }, "call"), reply);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let value;
    try {
      value = body.value.trim() && method.value !== "GET" ? JSON.parse(body.value) : undefined;
    } catch {
      reply.textContent = "the body is not JSON";
      return;
    }
    try {
      const answer = await dev.call(name, value, { method: method.value });
      reply.textContent = answer === null ? "done (no content)" : JSON.stringify(answer);
      $("error").textContent = "";
    } catch (err) {
      reply.textContent = `${err.status || "unreachable"}: ${err.message}`;
    }
  });
  return element("li", {}, form);
}

function showPorts(names) {
  if (JSON.stringify(names) === shownPorts) return;
  shownPorts = JSON.stringify(names);
  $("serial").replaceChildren(...names.map(terminal));
}

// A serial terminal: the bytes received as they arrive (the stream's `serial` event says
// some are there; they are read with `GET /?serial/NAME&wait=0`), as text or hex; a line
// to send, with the chosen line ending.
function terminal(name) {
  const screen = element("pre", { role: "log", "aria-label": `received from ${name}` });
  const view = element("select", { "aria-label": `view of ${name}` }, element("option", {}, "text"), element("option", {}, "hex"));
  const ending = element("select", { "aria-label": `line ending for ${name}` },
    ...Object.keys(ENDINGS).map((key) => element("option", {}, key)));
  const clear = element("button", { type: "button" }, "clear");
  const line = element("input", { type: "text", "aria-label": `send to ${name}`, autocomplete: "off" });
  const form = element("form", {}, line, element("button", {}, "send"));
  let chunks = []; // {sent, bytes}, the newest last, at most TERMINAL_BYTES in all
  let reading = null; // the read under way, and whether another must follow it
  let again = false;

  const render = () => {
    const hex = view.value === "hex";
    const nodes = [];
    let decoder = new TextDecoder();
    for (const { sent, bytes } of chunks) {
      if (hex) {
        const pairs = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
        nodes.push(sent ? element("span", { class: "sent" }, `> ${pairs}\n`) : `${pairs}\n`);
      } else if (sent) {
        decoder = new TextDecoder();
        nodes.push(element("span", { class: "sent" }, new TextDecoder().decode(bytes)));
      } else {
        nodes.push(decoder.decode(bytes, { stream: true }));
      }
    }
    screen.replaceChildren(...nodes);
    screen.scrollTop = screen.scrollHeight;
  };
  const add = (sent, bytes) => {
    if (bytes.length === 0) return;
    chunks.push({ sent, bytes });
    let total = chunks.reduce((sum, chunk) => sum + chunk.bytes.length, 0);
    while (total > TERMINAL_BYTES && chunks.length > 1) total -= chunks.shift().bytes.length;
    render();
  };
  const read = async (wait = 0) => {
    if (reading) {
      again = true;
      return reading;
    }
    reading = (async () => {
      do {
        again = false;
        const bytes = await attempt(() => dev.read(name, { wait, bytes: true }));
        if (bytes) add(false, bytes);
      } while (again);
      reading = null;
    })();
    return reading;
  };
  terminals[name] = read;

  view.addEventListener("change", render);
  clear.addEventListener("click", () => {
    chunks = [];
    render();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = line.value + ENDINGS[ending.value];
    line.value = "";
    if ((await attempt(() => dev.write(name, data))) === null) return;
    add(true, new TextEncoder().encode(data));
    if (stream === null) read(1); // no stream to say when the reply comes: wait for it
  });
  read(); // what came before the page opened
  const settings = element("div", { class: "controls" },
    element("label", { class: "unit" }, "view ", view), element("label", { class: "unit" }, "ending ", ending), clear);
  return element("section", { "data-port": name }, element("h2", {}, `Serial: ${name}`), screen, settings, form);
}

// Files (discovery lists "files" when `uploads` is configured): a file picked or dropped
// is uploaded (`PUT /?files/NAME`) with its progress bar; the stored files, each with a
// download link and a delete button. The app: its version, an update from an archive
// (`PUT /?app`), after which the page reloads into the new version, and the switch back.
function showFiles(on) {
  $("files").hidden = !on;
  if (on) {
    listFiles();
    showVersion();
  }
}

async function listFiles() {
  const reply = await attempt(() => dev.files());
  if (reply) $("file-list").replaceChildren(...reply.files.map(fileRow));
}

function fileRow({ name, size }) {
  const link = element("a", { href: `/?files/${encodeURIComponent(name)}`, download: name }, name);
  const remove = element("button", { type: "button", "aria-label": `delete ${name}` }, "delete");
  remove.addEventListener("click", async () => {
    await attempt(() => dev.removeFile(name)); // 204: null, as a failure is
    listFiles();
  });
  return element("li", { "data-file": name }, link, element("small", {}, bytes(size)), remove);
}

// Sends `file` with `send(file, {progress})`, showing its progress on the bar `bar` and
// the outcome in `status`; the reply, or null when it failed.
async function transfer(file, send, bar, status) {
  bar.hidden = false;
  bar.setAttribute("value", "0");
  status.textContent = `${file.name}: sending ${bytes(file.size)}`;
  const progress = (sent, total) => {
    bar.setAttribute("value", String(Math.round((sent / total) * 100)));
    status.textContent = `${file.name}: ${bytes(sent)} of ${bytes(total)}`;
  };
  try {
    const reply = await send(file, { progress });
    status.textContent = `${file.name}: done`;
    return reply;
  } catch (err) {
    status.textContent = `${file.name}: ${err.status || "unreachable"} ${err.message}`;
    return null;
  } finally {
    bar.hidden = true;
  }
}

async function uploadFile(file) {
  const send = (body, options) => dev.upload(`files/${encodeURIComponent(file.name)}`, body, options);
  if (await transfer(file, send, $("upload-progress"), $("upload-status"))) listFiles();
}

$("pick").addEventListener("change", () => {
  for (const file of $("pick").files) uploadFile(file);
  $("pick").value = "";
});
$("drop").addEventListener("dragover", (event) => {
  event.preventDefault();
  $("drop").classList.add("over");
});
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (event) => {
  event.preventDefault();
  $("drop").classList.remove("over");
  for (const file of event.dataTransfer.files) uploadFile(file);
});

async function showVersion() {
  const app = await attempt(() => dev.app());
  if (!app) return;
  const when = app.time ? `, installed ${new Date(app.time * 1000).toLocaleString()}` : "";
  $("app-version").textContent = app.digest ? `${app.digest.slice(0, 12)}${when}` : "as configured (documents)";
  $("rollback").hidden = app.digest === null && app.previous === null;
}

$("update-app").addEventListener("click", () => $("app-archive").click());
$("app-archive").addEventListener("change", async () => {
  const [archive] = $("app-archive").files;
  $("app-archive").value = "";
  if (archive && (await transfer(archive, (body, options) => dev.updateApp(body, options),
    $("app-progress"), $("app-status")))) location.reload(); // the new version, from now on
});
$("rollback").addEventListener("click", async (event) => {
  event.preventDefault();
  if ((await attempt(() => dev.rollback())) !== null) location.reload();
});

// A size in bytes as B, KiB or MiB.
function bytes(size) {
  if (size >= 1 << 20) return `${+(size / (1 << 20)).toPrecision(3)} MiB`;
  if (size >= 1024) return `${+(size / 1024).toPrecision(3)} KiB`;
  return `${size} B`;
}

// The event log: the newest first, at most LOG_LINES; `time` in seconds since the epoch
// (an event's own), else now.
function log(text, time) {
  const when = time ? new Date(time * 1000) : new Date();
  const stamp = when.toTimeString().slice(0, 8) + `.${String(when.getMilliseconds()).padStart(3, "0")}`;
  $("log").prepend(element("li", {}, element("time", {}, stamp), text));
  while ($("log").children.length > LOG_LINES) $("log").lastChild.remove();
}
$("clear-log").addEventListener("click", () => $("log").replaceChildren());

// The loop: its figures, every periodic task's lateness (how late each run started,
// over its last runs), and a chart of one task's p99 and max (the first one, or the one
// picked), sampled every 2 s.
const lateness = { task: null, points: [] };
$("chart-task").addEventListener("change", () => Object.assign(lateness, { task: null, points: [] }));

async function refreshStats() {
  try {
    const stats = await dev.get("stats");
    $("ips").textContent = Math.round(stats.iterations_per_second ?? 0);
    $("requests").textContent = stats.requests;
    $("connections").textContent = `${stats.connections.open} open, ${stats.connections.accepted} accepted`;
    showTasks(stats.tasks || []);
  } catch {
    // the reconnecting banner says it
  }
  setTimeout(refreshStats, STATS_EVERY);
}

// The server's own tasks (`internal`: event keep-alives, sampling) come after the app's,
// marked as such, so that the chart starts on an app's task.
const SERVERS_OWN = " (the server's own)";

function showTasks(all) {
  const tasks = [...all.filter((task) => !task.internal), ...all.filter((task) => task.internal)];
  $("tasks").replaceChildren(...tasks.map((task) => {
    const late = task.lateness_us;
    const own = task.internal ? [element("em", {}, SERVERS_OWN)] : [];
    return element("li", { "data-task": task.name }, element("strong", {}, task.name), ...own,
      ` every ${time(task.interval_us)}, ${task.runs} runs; late by median ${time(late.median)},`,
      ` p99 ${time(late.p99)}, max ${time(late.max)}; ${task.overruns} overruns, ${task.errors} errors`);
  }));
  const names = tasks.map((task) => task.name);
  const picker = $("chart-task");
  const picked = picker.value;
  if (JSON.stringify(names) !== JSON.stringify([...picker.options].map((option) => option.value))) {
    picker.replaceChildren(...tasks.map((task) =>
      element("option", { value: task.name }, task.internal ? task.name + SERVERS_OWN : task.name)));
    if (names.includes(picked)) picker.value = picked;
  }
  picker.hidden = names.length < 2;
  drawLateness(tasks.find((task) => task.name === picker.value) ?? tasks[0]);
}

function drawLateness(task) {
  const polylines = (points) => {
    document.querySelector("#chart .p99").setAttribute("points", points("p99"));
    document.querySelector("#chart .max").setAttribute("points", points("max"));
  };
  if (!task || task.lateness_us.p99 === null) {
    lateness.points = [];
    polylines(() => "");
    $("chart-label").textContent = task
      ? `${task.name}, every ${time(task.interval_us)}: no run yet, so no lateness.`
      : "Lateness: no periodic task runs (an app's server.every tasks are measured here).";
    return;
  }
  if (task.name !== lateness.task) Object.assign(lateness, { task: task.name, points: [] });
  lateness.points.push(task.lateness_us);
  if (lateness.points.length > HISTORY) lateness.points.shift();
  const top = scale(Math.max(...lateness.points.map((point) => point.max)));
  const x = (i) => (i * 300) / Math.max(1, lateness.points.length - 1); // the points so far, spread
  polylines((key) => lateness.points.map((point, i) => `${x(i)},${60 - Math.min(1, point[key] / top) * 58}`).join(" "));
  const { p99, max } = task.lateness_us;
  const percent = (p99 / task.interval_us) * 100;
  const share = percent >= 10 ? Math.round(percent) : +percent.toPrecision(2);
  const label = $("chart-label");
  label.replaceChildren(
    `${task.name}, every ${time(task.interval_us)}: p99 lateness ${time(p99)} (${share} % of its period), `,
    `max ${time(max)}, over its last ${Math.min(task.runs, WINDOW)} runs. `,
    element("span", { class: "key", style: "background:#36c" }), " p99 ",
    element("span", { class: "key", style: "background:#e80" }), " max; ",
    `chart 0 to ${time(top)} (dashed line ${time(top / 2)}), the last`,
    ` ${(lateness.points.length * STATS_EVERY) / 1000} s, a point every ${STATS_EVERY / 1000} s.`,
  );
}

// The smallest 1, 2 or 5 times a power of ten at or above `value` (µs), for the chart's top.
function scale(value) {
  const power = 10 ** Math.floor(Math.log10(Math.max(value, 1)));
  return [1, 2, 5, 10].map((step) => step * power).find((top) => top >= value);
}

// A duration in µs as µs, ms or s.
function time(us) {
  if (us === null || us === undefined) return "-";
  if (us >= 1e6) return `${+(us / 1e6).toPrecision(3)} s`;
  if (us >= 1e3) return `${+(us / 1e3).toPrecision(3)} ms`;
  return `${Math.round(us)} µs`;
}

setUp();
refreshStats();
