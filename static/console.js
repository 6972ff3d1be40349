// The device console: every configured pin, the serial ports, and the loop's figures.
import { HTTaP } from "./httap.js";

const dev = new HTTaP();
const $ = (id) => document.getElementById(id);
const STATS_EVERY = 2000; // ms
const HISTORY = 60; // points in the lateness chart
const lateness = [];
let watches = []; // stop() of each input's watch
let shown = { layout: null, updates: {} }; // the pins on the page: names and modes, updaters
let simulated = false; // the simulated board (discovery's `Simulated`): inputs can be driven

dev.addEventListener("busy", () => ($("busy").hidden = false));
dev.addEventListener("reconnecting", () => ($("reconnecting").hidden = false));
dev.addEventListener("connected", () => ($("reconnecting").hidden = true));
dev.addEventListener("session", setUp); // a new session: the server may have restarted

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function report(err) {
  // busy and unreachable have their banners; anything else is shown as it is
  if (err.error !== "busy" && err.status !== 0) $("error").textContent = err.message;
}

const write = (path, value) => attempt(() => dev.set(path, value));

// Sends a write (`request()`, a call of dev) and clears the banners, or shows what failed.
async function attempt(request) {
  try {
    const state = await request();
    $("busy").hidden = true;
    $("error").textContent = "";
    return state;
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
    showPins((await dev.get("gpio")).pins);
    $("serial").replaceChildren(...(discovery.Serial || []).map(portConsole));
  } catch (err) {
    report(err);
  }
}

// A new session redraws nothing that is already there: it updates the values, and only a
// different set of pins (a new configuration) rebuilds the rows and their watches.
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
  const control = { out: outputSwitch, in: inputLamp, pwm: pwmSlider }[state.mode](name);
  const label = element("span", {}, name, " ", element("small", {}, `GPIO ${state.gpio}, ${state.mode}`));
  return element("li", { "data-pin": name }, label, control);
}

function outputSwitch(name) {
  const button = element("button", { role: "switch", "aria-label": name });
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
  return button;
}

function inputLamp(name) {
  const lamp = element("output", { class: "lamp", "aria-label": name });
  const drive = simulated && driveButton(name);
  const stop = dev.watch(`gpio/${name}`, ({ value }) => {
    lamp.textContent = value;
    lamp.classList.toggle("on", value === 1);
    if (drive) drive.show(value);
  });
  watches.push(stop);
  return drive ? element("span", {}, drive.button, " ", lamp) : lamp;
}

// On the simulated board: a button that sets the input's wire to the other level.
function driveButton(name) {
  const button = element("button", { class: "drive", "aria-label": `drive ${name}` });
  let next = 0;
  const show = (value) => {
    next = value === 1 ? 0 : 1;
    button.textContent = `drive ${next}`;
  };
  show(1);
  button.addEventListener("click", () => attempt(() => dev.drive(name, next)));
  return { button, show };
}

function pwmSlider(name) {
  const slider = element("input", { type: "range", min: 0, max: 1, step: 0.01, "aria-label": name });
  const duty = element("output");
  const show = () => (duty.textContent = `${Math.round(slider.value * 100)} %`);
  shown.updates[name] = (state) => {
    slider.value = state.pwm.duty;
    show();
  };
  slider.addEventListener("input", show);
  slider.addEventListener("change", () => write(`gpio/${name}`, { pwm: { duty: Number(slider.value) } }));
  return element("span", {}, slider, " ", duty);
}

function portConsole(name) {
  const log = element("pre", { "aria-live": "polite" });
  const line = element("input", { "aria-label": `send to ${name}`, autocomplete: "off" });
  const form = element("form", {}, line, element("button", {}, "send"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = line.value;
    line.value = "";
    log.textContent += `> ${text}\n`;
    try {
      log.textContent += (await dev.write(name, `${text}\n`, { until: "\n", wait: 2 })) || "(no reply)\n";
      $("busy").hidden = true;
    } catch (err) {
      report(err);
    }
  });
  return element("section", {}, element("h2", {}, `Serial: ${name}`), log, form);
}

async function refreshStats() {
  try {
    const stats = await dev.get("stats");
    $("ips").textContent = Math.round(stats.iterations_per_second ?? 0);
    $("requests").textContent = stats.requests;
    $("connections").textContent = `${stats.connections.open} open, ${stats.connections.accepted} accepted`;
    drawLateness(stats.tasks[0]);
  } catch {
    // the reconnecting banner says it
  }
  setTimeout(refreshStats, STATS_EVERY);
}

function drawLateness(task) {
  if (!task || task.lateness_us.p99 === null) {
    $("chart-label").textContent = "p99 lateness: no periodic task runs";
    return;
  }
  lateness.push(task.lateness_us.p99);
  if (lateness.length > HISTORY) lateness.shift();
  const top = Math.max(...lateness);
  const points = lateness.map((us, i) => `${(i * 300) / (HISTORY - 1)},${58 - (us / top) * 54}`);
  document.querySelector("#chart polyline").setAttribute("points", points.join(" "));
  $("chart-label").textContent = `p99 lateness of ${task.name}: ${us(task.lateness_us.p99)} (top of chart ${us(top)})`;
}

const us = (value) => `${Math.round(value)} µs`;

setUp();
refreshStats();
