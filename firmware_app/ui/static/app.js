// The kiosk page: renders the state the daemon pushes over Server-Sent Events and
// posts the volunteer's taps back as station commands. No framework, no build step.
"use strict";

const TEXT = {
  "zh-CN": {
    operator: "操作员", no_operator: "未签到", mode: "模式", today: "今日",
    today_value: "{people}人 / {tubes}管", tube: "当前管", no_tube: "无",
    modes: { "1": "单采单检", "10": "10混1", "20": "20混1", household: "一户一管" },
    close_tube: "封管", reprint_label: "补打标签", void_last: "作废上一人",
    switch_mode: "切换模式", confirm_duplicate: "确认加入", reject_duplicate: "不加入",
    confirm_single: "确认单管", confirm_replace: "确认换管", reject: "取消",
    sign_out: "签退", yes: "确定", cancel: "取消",
    confirm_void: "确定作废上一人 {who}？", confirm_sign_out: "确定签退？",
    choose_mode: "选择混采模式",
    colours: { green: "绿码", yellow: "黄码", red: "红码" },
    sources: { idcard: "身份证", qr: "采样码", camera: "二维码", scanner: "扫码枪", manual: "手工录入" },
    last_person: "上一位", pending_person: "待确认", voided: "已作废",
    single: "单管", single_reasons: { yellow_code: "黄码", red_code: "红码", key_person: "重点人群" },
    devices: { idcard: "身份证", scanner: "扫码枪", camera: "摄像头", printer: "打印机", store: "存储", broker: "服务器" },
    broker: "服务器", backlog: "待传", offline_only: "仅离线", labels_waiting: "待打印标签",
    problems_title: "需要技术员处理", line: "第{line}行",
    disconnected: "与采样程序的连接已断开", reconnecting: "正在自动重新连接…请稍候",
    send_failed: "操作未送达：{error}", waiting: "等待采样程序…",
    other_lang: "EN",
  },
  en: {
    operator: "Operator", no_operator: "not signed in", mode: "Mode", today: "Today",
    today_value: "{people} people / {tubes} tubes", tube: "Tube", no_tube: "none",
    modes: { "1": "single", "10": "10 in 1", "20": "20 in 1", household: "household" },
    close_tube: "Close tube", reprint_label: "Reprint label", void_last: "Void last",
    switch_mode: "Switch mode", confirm_duplicate: "Confirm add", reject_duplicate: "Do not add",
    confirm_single: "Single tube", confirm_replace: "Replace tube", reject: "Cancel",
    sign_out: "Sign out", yes: "Yes", cancel: "Cancel",
    confirm_void: "Void the last person {who}?", confirm_sign_out: "Sign out now?",
    choose_mode: "Choose the pooling mode",
    colours: { green: "green", yellow: "yellow", red: "red" },
    sources: { idcard: "ID card", qr: "sampling code", camera: "QR code", scanner: "scanner", manual: "manual" },
    last_person: "Last person", pending_person: "Waiting for confirm", voided: "voided",
    single: "single", single_reasons: { yellow_code: "yellow code", red_code: "red code", key_person: "key person" },
    devices: { idcard: "ID card", scanner: "Scanner", camera: "Camera", printer: "Printer", store: "Storage", broker: "Broker" },
    broker: "Broker", backlog: "Unsent", offline_only: "offline only", labels_waiting: "Labels waiting",
    problems_title: "Needs a technician", line: "line {line}",
    disconnected: "Lost the connection to the kiosk program", reconnecting: "Reconnecting automatically… please wait",
    send_failed: "Not sent: {error}", waiting: "Waiting for the kiosk program…",
    other_lang: "中文",
  },
};
const ICONS = { ok: "✔", confirm: "!", error: "✖", info: "…" };
const DEVICE_ORDER = ["idcard", "scanner", "camera", "printer", "store"];
const STALE_MS = 40000; // the server pings every 15 s; silence this long means a hung daemon

const $ = (id) => document.getElementById(id);
let state = null;
let chosenLang = TEXT[localStorage.getItem("swab-lang")] ? localStorage.getItem("swab-lang") : null;
let lang = chosenLang || "zh-CN";
let lastFlash = null;
let firstAfterConnect = true;
let lastMessageAt = Date.now();
let source = null;

function t(key, vars) {
  let s = TEXT[lang][key] ?? TEXT["zh-CN"][key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
  return s;
}
function pick(obj, key) { return (TEXT[lang][obj] || {})[key] ?? key; }
function localized(zh, en) { return lang === "en" ? (en || zh || "") : (zh || en || ""); }
function other(zh, en) { return lang === "en" ? (en ? zh : "") : en || ""; }

// ------------------------------------------------------------------ sound
// Distinct WebAudio tones (no sound files): rising chirp = OK, two flat = confirm,
// low buzz = error. Kiosk Chromium runs with --autoplay-policy=no-user-gesture-required.
const TONES = {
  ok: [[880, 0.09, "sine"], [1320, 0.16, "sine"]],
  confirm: [[660, 0.16, "triangle"], [660, 0.16, "triangle"]],
  error: [[220, 0.22, "square"], [165, 0.22, "square"], [220, 0.3, "square"]],
  info: [[990, 0.08, "sine"]],
};
let audio = null;
function tone(level) {
  $("app").dataset.tone = level;
  if (!state || !state.ui.sound) return;
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
    let at = audio.currentTime + 0.01;
    for (const [freq, dur, type] of TONES[level] || TONES.info) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = type;
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.4, at + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + dur);
      osc.connect(gain).connect(audio.destination);
      osc.start(at);
      osc.stop(at + dur + 0.02);
      at += dur + 0.05;
    }
  } catch (err) {
    console.warn("no sound:", err);
  }
}

// ------------------------------------------------------------------ rendering
function setText(id, text) { const el = $(id); if (el.textContent !== text) el.textContent = text; }

function render() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  $("lang").textContent = t("other_lang");
  if (!state) { setText("message", t("waiting")); return; }
  const s = state.snapshot;

  const op = s.operator;
  setText("operator", op ? op.name : t("no_operator"));
  $("operator").classList.toggle("missing", !op);
  setText("mode", s.mode ? pick("modes", String(s.mode)) : "—");
  const today = s.today || {};
  setText("today", t("today_value", { people: today.people ?? 0, tubes: today.tubes ?? 0 }));

  // the big state panel: colour, icon and words all say the same thing
  const level = ["ok", "confirm", "error"].includes(s.level) ? s.level : "info";
  $("state").dataset.level = level;
  setText("icon", ICONS[level]);
  const text = localized(s.message, s.message_en) || t("waiting");
  setText("message", text);
  // long reasons shrink rather than spill out of the panel
  const weight = [...text].reduce((n, ch) => n + (ch.charCodeAt(0) > 0x2e80 ? 1 : 0.55), 0);
  $("message").className = weight > 22 ? "longer" : weight > 12 ? "long" : "";
  setText("message-alt", other(s.message, s.message_en));
  const who = s.pending && s.pending.name ? s.pending : s.last;
  $("person").hidden = !who;
  if (who) {
    setText("person-label", t(who === s.last ? "last_person" : "pending_person") + (who.voided ? " · " + t("voided") : ""));
    $("person").classList.toggle("voided", !!who.voided);
    const code = $("code");
    code.className = "chip " + (who.colour || "none");
    code.textContent = who.colour ? pick("colours", who.colour) : "";
    code.hidden = !who.colour;
    setText("person-name", who.name || "");
    setText("person-id", who.id || "");
    setText("person-source", who.source ? pick("sources", who.source) : "");
  }
  // a pending confirm takes the tube strip's place: the two answers are what matters now
  $("pending-actions").hidden = !s.pending;
  $("tube").hidden = !!s.pending;
  const answers = pendingAnswers(s.pending);
  for (const b of document.querySelectorAll("[data-cmd=confirm_duplicate]")) b.textContent = t(answers.yesLabel);
  for (const b of document.querySelectorAll("[data-cmd=reject_duplicate]")) b.textContent = t(answers.noLabel);

  // the tube and its fill
  const tube = s.tube;
  setText("tube-id", tube ? tube.id : t("no_tube"));
  setText("count", tube ? String(tube.count) : "0");
  setText("capacity", tube ? " / " + tube.capacity : "");
  const single = $("single");
  single.hidden = !(tube && tube.single_reason);
  if (tube && tube.single_reason) single.textContent = t("single") + "·" + pick("single_reasons", tube.single_reason);
  renderDots(tube);

  // actions: enabled only when they can mean something
  const can = {
    close_tube: !!(op && tube && tube.count > 0),
    reprint_label: !!op,
    void_last: !!(op && s.last && !s.last.voided),
    switch_mode: !!op,
    confirm_duplicate: !!s.pending,
    reject_duplicate: !!s.pending,
    sign_out: !!op,
  };
  for (const b of document.querySelectorAll("button[data-cmd]")) b.disabled = !can[b.dataset.cmd];

  renderLights(s);
  renderProblems(state.problems || []);
}

// What the confirm/reject taps mean depends on what waits: a person seen today already,
// a yellow/red code or key person for a separate single tube, or a broken-tube swap.
function pendingAnswers(p) {
  if (p && p.duplicate_of) return { yes: "confirm_duplicate", no: "reject_duplicate", yesLabel: "confirm_duplicate", noLabel: "reject_duplicate" };
  if (p && p.kind === "replace_tube") return { yes: "confirm", no: "reject", yesLabel: "confirm_replace", noLabel: "reject" };
  if (p && p.single_reason) return { yes: "confirm", no: "reject", yesLabel: "confirm_single", noLabel: "reject" };
  return { yes: "confirm", no: "reject", yesLabel: "confirm_duplicate", noLabel: "reject_duplicate" };
}

function renderDots(tube) {
  const dots = $("dots");
  const cap = tube ? Math.min(tube.capacity, 20) : 0;
  const count = tube ? tube.count : 0;
  if (dots.children.length !== cap) {
    dots.replaceChildren(...Array.from({ length: cap }, () => document.createElement("i")));
  }
  [...dots.children].forEach((d, i) => d.classList.toggle("on", i < count));
  dots.classList.toggle("twenty", cap > 10);
}

function light(label, status, detail) {
  const li = document.createElement("span");
  li.className = "light " + status;
  const dot = document.createElement("i");
  const b = document.createElement("b");
  b.textContent = label;
  li.append(dot, b);
  if (detail) { const d = document.createElement("small"); d.textContent = detail; li.append(d); }
  return li;
}

function brokerStatus(b) {
  if (b === null || b.url === "") return { status: "off", detail: t("offline_only") };
  const ok = "connected" in b ? !!b.connected : !!b.ok;
  return { status: ok ? "ok" : "bad", detail: ok ? "" : localized(b.error || b.reason, b.error_en) };
}

function renderLights(s) {
  const items = [];
  const devices = s.devices || {};
  const names = DEVICE_ORDER.filter((n) => n in devices).concat(Object.keys(devices).filter((n) => !DEVICE_ORDER.includes(n)))
    .filter((n) => !(n === "broker" && s.broker !== undefined)); // one broker light, from the uplink
  for (const name of names) {
    const d = typeof devices[name] === "object" && devices[name] ? devices[name] : { ok: !!devices[name] };
    items.push(light(pick("devices", name), d.ok ? "ok" : "bad", d.ok ? "" : d.reason || ""));
  }
  // broker: {ok, reason} or the uplink's state() {connected, url, error, error_en}; null = none
  const broker = s.broker === undefined ? undefined : brokerStatus(s.broker);
  if (broker) items.push(light(t("broker"), broker.status, broker.detail));
  if ("backlog" in s) {
    const n = Number(s.backlog) || 0;
    items.push(light(t("backlog") + " " + n, n === 0 ? "ok" : broker && broker.status === "ok" ? "busy" : "warn"));
  }
  if (s.labels_waiting) items.push(light(t("labels_waiting") + " " + s.labels_waiting, "warn"));
  $("lights").replaceChildren(...items);
}

function renderProblems(problems) {
  $("problems").hidden = problems.length === 0;
  $("problem-list").replaceChildren(...problems.map((p) => {
    const li = document.createElement("li");
    const where = [p.key, p.line ? t("line", { line: p.line }) : ""].filter(Boolean).join(" · ");
    if (where) { const k = document.createElement("code"); k.textContent = where; li.append(k, " "); }
    li.append(localized(p.message, p.message_en));
    const alt = other(p.message, p.message_en);
    if (alt) { const small = document.createElement("small"); small.textContent = alt; li.append(small); }
    return li;
  }));
}

function flash(level) {
  const panel = $("state");
  panel.classList.remove("flash");
  void panel.offsetWidth; // restart the animation
  panel.classList.add("flash");
  tone(level);
}

// ------------------------------------------------------------------ actions
async function post(path, body) {
  try {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      throw new Error(data.error || res.status);
    }
  } catch (err) {
    localNotice(t("send_failed", { error: err.message }));
  }
}

function localNotice(text) {
  const div = $("local-error");
  div.textContent = text;
  div.hidden = false;
  tone("error");
  clearTimeout(localNotice.timer);
  localNotice.timer = setTimeout(() => { div.hidden = true; }, 8000);
}

function command(name, args) { return post("/api/command", { name, args: args || {} }); }

function ask(title, buttons) {
  setText("dialog-title", title);
  $("dialog-buttons").replaceChildren(...buttons.map(([label, cls, action]) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "act " + cls;
    b.textContent = label;
    b.addEventListener("click", () => { $("dialog").hidden = true; if (action) action(); });
    return b;
  }));
  $("dialog").hidden = false;
}

function onAction(name) {
  const s = state ? state.snapshot : {};
  if (name === "void_last") {
    const who = s.last ? `${s.last.name || ""} ${s.last.id || ""}`.trim() : "";
    ask(t("confirm_void", { who }), [[t("yes"), "danger", () => command("void_last")], [t("cancel"), "", null]]);
  } else if (name === "sign_out") {
    ask(t("confirm_sign_out"), [[t("yes"), "danger", () => command("sign_out")], [t("cancel"), "", null]]);
  } else if (name === "switch_mode") {
    const modes = ["1", "10", "20", "household"].map((m) =>
      [pick("modes", m), String(s.mode) === m ? "current" : "", () => command("switch_mode", { mode: m })]);
    ask(t("choose_mode"), modes.concat([[t("cancel"), "", null]]));
  } else if (name === "confirm_duplicate") {
    command(pendingAnswers(s.pending).yes);
  } else if (name === "reject_duplicate") {
    command(pendingAnswers(s.pending).no);
  } else {
    command(name);
  }
}

// ------------------------------------------------------------------ live connection
function setConn(conn) {
  $("app").dataset.conn = conn;
  $("offline").hidden = conn === "open";
}

function connect() {
  if (source) source.close();
  source = new EventSource("/events");
  source.addEventListener("open", () => { lastMessageAt = Date.now(); firstAfterConnect = true; });
  source.addEventListener("state", (ev) => {
    lastMessageAt = Date.now();
    state = JSON.parse(ev.data);
    if (!chosenLang) lang = state.ui.language === "en" ? "en" : "zh-CN";
    setConn("open");
    render();
    // after a (re)connect show the state silently; beep only for news seen live
    if (!firstAfterConnect && state.flash.n !== lastFlash) flash(state.flash.level);
    firstAfterConnect = false;
    lastFlash = state.flash.n;
    $("app").dataset.rev = state.rev;
  });
  source.addEventListener("ping", () => { lastMessageAt = Date.now(); });
  source.addEventListener("error", () => {
    // EventSource retries by itself (server sent retry: 1000); meanwhile say so clearly
    setConn("closed");
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 1000);
  });
}

setInterval(() => {
  if (Date.now() - lastMessageAt > STALE_MS) { setConn("closed"); lastMessageAt = Date.now(); connect(); }
}, 5000);

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("button[data-cmd]")) {
    b.addEventListener("click", () => onAction(b.dataset.cmd));
  }
  $("lang").addEventListener("click", () => {
    lang = chosenLang = lang === "en" ? "zh-CN" : "en";
    localStorage.setItem("swab-lang", lang); // the volunteer's choice outlives a reload
    render();
  });
  // the first touch unlocks audio where the autoplay policy needs a gesture
  document.addEventListener("pointerdown", () => { if (audio && audio.state === "suspended") audio.resume(); });
  render();
  setConn("connecting");
  connect();
});
