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
    confirm_single: "确认单管", scan_single: "请扫描单管条码", confirm_replace: "确认换管", confirm_command: "确认执行", reject: "取消",
    sign_out: "签退", yes: "确定", cancel: "取消",
    confirm_void: "确定作废上一人 {who}？", confirm_sign_out: "确定签退？",
    choose_mode: "选择混采模式",
    colours: { green: "绿码", yellow: "黄码", red: "红码" },
    sources: { idcard: "身份证", qr: "采样码", camera: "二维码", scanner: "扫码枪", manual: "手工录入" },
    last_person: "上一位", pending_person: "待确认", voided: "已作废",
    single: "单管", single_reasons: { yellow_code: "黄码", red_code: "红码", key_person: "重点人群" },
    devices: { idcard: "身份证", scanner: "扫码枪", camera: "摄像头", printer: "打印机", store: "存储", broker: "服务器" },
    broker: "服务器", backlog: "待传", offline_only: "仅离线", labels_waiting: "待打印",
    problems_title: "需要技术员处理", line: "第{line}行",
    disconnected: "与采样程序的连接已断开", reconnecting: "正在自动重新连接…请稍候",
    send_failed: "操作未送达：{error}", waiting: "等待采样程序…",
    other_lang: "EN",
    manual_entry: "手工登记", people: "本管人员", box: "转运箱", replace_tube: "更换试管", close: "关闭",
    manual_title: "手工登记（无证件或读不出）", register: "登记", f_number: "证件号", f_name: "姓名", f_phone: "电话",
    id_types: { resident_id: "居民身份证", passport: "护照", hk_macau_permit: "港澳通行证", taiwan_permit: "台湾通行证",
      foreign_permanent: "外国人永居证", none: "无证件" },
    no_number: "无证件：请填姓名和监护人电话", number_ok: "✔ 号码格式正确", need_name: "请填写姓名",
    need_phone: "无证件人员请填写联系电话（监护人电话）", bad_phone: "电话应为7-12位数字",
    people_title: "当前管 {tube} · {n}人", no_people: "当前管还没有人", void: "作废", void_one: "确定作废第{n}位 {who}？",
    confirm_replace_tube: "管 {tube} 破损或洒漏：更换新管并召回本管人员重新采样？",
    box_title: "转运箱 {box} · {n}/{cap}管 · {people}人", no_box: "没有打开的转运箱",
    count_prompt: "请清点桌上实物管数，输入后按“提交清点”", count_blocked: "清点不符：清单 {listed} 管，实数 {counted} 管——核对后重新清点，未一致不能封箱",
    count_ok: "清点一致：{listed} 管，可以封箱", count_label: "实物管数", courier_label: "转运人员姓名",
    count_submit: "提交清点", close_box: "封箱", handover: "交接", handover_submit: "确认交接",
    closed_boxes: "已封箱待交接", confirm_handover: "将转运箱 {box} 交给 {courier}？",
    courier_hint: "或扫描转运人员的交接码", recall_title: "须召回重新采样（{n}人，召回单已打印）",
    next: "下一步：", tech_title: "技术员面板：完整状态", tech_hint: "点此处看详情",
    unsent_warn: "⚠ {n}条记录未上传，最早已{age}", unsent_alarm: "⚠ {n}条记录已{age}未上传——请联系技术员",
    minutes: "{m}分钟", hours: "{h}小时{m}分", alert: "红码警报",
    name_hint: "姓名：屏幕拼音（打拼音后点字），或接USB键盘打拼音（数字键选字）；字库里没有的字可用ABC输入拼音全拼",
  },
  en: {
    operator: "Operator", no_operator: "not signed in", mode: "Mode", today: "Today",
    today_value: "{people} people / {tubes} tubes", tube: "Tube", no_tube: "none",
    modes: { "1": "single", "10": "10 in 1", "20": "20 in 1", household: "household" },
    close_tube: "Close tube", reprint_label: "Reprint label", void_last: "Void last",
    switch_mode: "Switch mode", confirm_duplicate: "Confirm add", reject_duplicate: "Do not add",
    confirm_single: "Single tube", scan_single: "Scan the single tube", confirm_replace: "Replace tube", confirm_command: "Carry it out", reject: "Cancel",
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
    manual_entry: "Manual entry", people: "Tube people", box: "Box", replace_tube: "Replace tube", close: "Close",
    manual_title: "Manual entry (no card or code)", register: "Register", f_number: "Number", f_name: "Name", f_phone: "Phone",
    id_types: { resident_id: "Resident ID", passport: "Passport", hk_macau_permit: "HK/Macau permit", taiwan_permit: "Taiwan permit",
      foreign_permanent: "Foreign PR card", none: "No document" },
    no_number: "No document: enter the name and a guardian's phone", number_ok: "✔ number looks right", need_name: "Enter the name",
    need_phone: "People without a document need a phone (guardian's)", bad_phone: "Phone: 7-12 digits",
    people_title: "Tube {tube} · {n} people", no_people: "Nobody in the tube yet", void: "Void", void_one: "Void person {n} {who}?",
    confirm_replace_tube: "Tube {tube} broken or spilled: replace it and recall its people?",
    box_title: "Box {box} · {n}/{cap} tubes · {people} people", no_box: "No open box",
    count_prompt: "Count the tubes on the table, enter the number, tap Submit count", count_blocked: "Count mismatch: {listed} listed, {counted} counted — recount; the box cannot close until they match",
    count_ok: "Count matches: {listed} tubes, ready to close", count_label: "Tubes counted", courier_label: "Courier name",
    count_submit: "Submit count", close_box: "Close box", handover: "Hand over", handover_submit: "Hand over",
    closed_boxes: "Closed, waiting for the courier", confirm_handover: "Hand box {box} to {courier}?",
    courier_hint: "or scan the courier's hand-over code", recall_title: "Recall for a new swab ({n}, slip printed)",
    next: "Next: ", tech_title: "Technician panel: full status", tech_hint: "tap for details",
    unsent_warn: "⚠ {n} records unsent, oldest {age}", unsent_alarm: "⚠ {n} records unsent for {age} — call the technician",
    minutes: "{m} min", hours: "{h} h {m} min", alert: "RED CODE ALERT",
    name_hint: "Name: on-screen pinyin (type, tap the character) or a USB keyboard (digits pick); a character not in the table: ABC, full pinyin",
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
  const detail = s.detail || {};
  $("state").dataset.alert = detail.alert ? "1" : "";
  const recall = detail.recall && Array.isArray(detail.people) ? detail.people : null;
  $("recall").hidden = !recall;
  $("state").classList.toggle("recall", !!recall);
  if (recall) {
    setText("recall-title", t("recall_title", { n: recall.length }));
    $("recall-list").replaceChildren(...recall.map((who) => { const li = document.createElement("li"); li.textContent = who; return li; }));
  }
  const next = s.next_step ? localized(s.next_step.message, s.next_step.message_en) : "";
  setText("next", next && !text.includes(next) ? t("next") + next : "");
  const who = recall ? null : s.pending && s.pending.name ? s.pending : s.last;
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
  // a pending confirm takes the action buttons' place (the two answers are what matters
  // now); the tube and its fill stay in view
  $("pending-actions").hidden = !s.pending;
  $("actions").hidden = !!s.pending;
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
    manual_entry: !!op,
    people: !!(op && (tube && tube.count > 0 || s.last)),
    close_tube: !!(op && tube && tube.count > 0),
    box: !!(s.box || (s.boxes_closed || []).length),
    reprint_label: !!op,
    replace_tube: !!(op && (tube && tube.count > 0 || s.last)),
    void_last: !!(op && s.last && !s.last.voided),
    switch_mode: !!op,
    // pre-labelled single tube: the answer is scanning that tube, not a tap
    confirm_duplicate: !!s.pending && !s.pending.needs_tube_scan,
    reject_duplicate: !!s.pending,
    sign_out: !!op,
  };
  for (const b of document.querySelectorAll("button[data-cmd]")) b.disabled = !can[b.dataset.cmd];
  // household: the tube closes by hand, per family; the button says it is the next step
  $("actions").querySelector("[data-cmd=close_tube]").classList.toggle("hint", !!(tube && tube.count > 0 && tube.mode === "household"));
  renderUnsent(s);
  // a command card (SWABCMD:open_view:manual|box|people) opens that page here
  if (detail.open && state.flash.n !== render.opened) {
    render.opened = state.flash.n;
    onAction({ manual: "manual_entry", box: "box", people: "people" }[detail.open]);
  }
  if (!$("people").hidden) renderPeople(s);
  if (!$("boxes").hidden) renderBox(s);
  if (!$("tech").hidden) renderTech(s);
  afterManual(s);

  renderLights(s);
  renderProblems(state.problems || []);
}

// What the confirm/reject taps mean depends on what waits: a person seen today already,
// a yellow/red code or key person for a separate single tube, or a broken-tube swap.
function pendingAnswers(p) {
  if (p && p.duplicate_of) return { yes: "confirm_duplicate", no: "reject_duplicate", yesLabel: "confirm_duplicate", noLabel: "reject_duplicate" };
  if (p && p.kind === "replace_tube") return { yes: "confirm", no: "reject", yesLabel: "confirm_replace", noLabel: "reject" };
  if (p && p.kind === "command") return { yes: "confirm", no: "reject", yesLabel: "confirm_command", noLabel: "reject" };
  if (p && p.needs_tube_scan) return { yes: "confirm", no: "reject", yesLabel: "scan_single", noLabel: "reject" };
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

// Short zh-CN words for a device's or the broker's reason: the footer slot has room for a
// few characters; the full text is in the technician panel (tap the footer).
const SHORT = [
  [/paper|缺纸|纸/i, "缺纸", "paper"], [/refused|拒绝/i, "被拒绝", "refused"], [/timed? ?out|超时/i, "超时", "timeout"],
  [/not found|no such|unplug|拔出|未连接|disconnect|断开|gone/i, "未连接", "unplugged"],
  [/input\/output|i\/o|errno 5|读写/i, "读写错误", "I/O error"], [/auth|not authori[sz]ed|认证|密码/i, "认证失败", "auth"],
  [/tls|ssl|certificate|证书/i, "证书错误", "TLS"], [/dns|resolve|name or service/i, "域名错误", "DNS"],
  [/unreachable|network|网络/i, "网络不通", "network"], [/cover|盖/i, "盖未关", "cover open"],
];
function shortReason(reason) {
  if (!reason) return "";
  if ([...reason].length <= 6 && /^[\u2e80-\u9fff]+$/.test(reason)) return reason; // already short zh-CN words
  for (const [re, zh, en] of SHORT) if (re.test(reason)) return lang === "en" ? en : zh;
  return [...reason].length <= 4 ? reason : (lang === "en" ? "fault" : "故障");
}
const allLights = [];

function light(label, status, detail, full) {
  allLights.push([label, status, full || detail || ""]);
  detail = detail || shortReason(full);
  const li = document.createElement("span");
  li.className = "light " + status;
  const dot = document.createElement("i");
  const b = document.createElement("b");
  b.textContent = label;
  li.append(dot, b);
  if (detail) { const d = document.createElement("small"); d.textContent = detail; li.append(d); }
  li.title = full || "";
  return li;
}

function brokerStatus(b) {
  if (b === null || b.url === "") return { status: "off", detail: t("offline_only") };
  const ok = "connected" in b ? !!b.connected : !!b.ok;
  return { status: ok ? "ok" : "bad", detail: ok ? "" : localized(b.error || b.reason, b.error_en) };
}

function renderLights(s) {
  allLights.length = 0;
  const items = [];
  const devices = s.devices || {};
  const names = DEVICE_ORDER.filter((n) => n in devices).concat(Object.keys(devices).filter((n) => !DEVICE_ORDER.includes(n)))
    .filter((n) => !(n === "broker" && s.broker !== undefined)); // one broker light, from the uplink
  for (const name of names) {
    const d = typeof devices[name] === "object" && devices[name] ? devices[name] : { ok: !!devices[name] };
    items.push(light(pick("devices", name), d.ok ? "ok" : "bad", "", d.ok ? "" : d.reason || t("tech_hint")));
  }
  // broker: {ok, reason} or the uplink's state() {connected, url, error, error_en}; null = none
  const broker = s.broker === undefined ? undefined : brokerStatus(s.broker);
  if (broker) items.push(broker.status === "bad" ? light(t("broker"), "bad", "", broker.detail || t("tech_hint")) : light(t("broker"), broker.status, broker.detail));
  if ("backlog" in s) {
    const n = Number(s.backlog) || 0;
    const u = s.unsent || {};
    const status = u.level === "alarm" ? "bad" : u.level === "warn" ? "warn" : n === 0 ? "ok" : broker && broker.status === "ok" ? "busy" : "warn";
    items.push(light(t("backlog") + " " + n, status, u.oldest_min ? age(u.oldest_min) : "",
      u.oldest_min ? t("unsent_" + (u.level === "alarm" ? "alarm" : "warn"), { n, age: age(u.oldest_min) }) : ""));
  }
  if (s.labels_waiting) items.push(light(t("labels_waiting") + " " + s.labels_waiting, "warn"));
  $("lights").replaceChildren(...items);
}

function age(minutes) {
  const h = Math.floor(minutes / 60), m = minutes % 60;
  return h ? t("hours", { h, m }) : t("minutes", { m });
}

// records waiting too long for the district: amber at [ui] unsent_warn_minutes, red at
// unsent_alarm_minutes, with the oldest one's age (the daemon speaks each level once)
function renderUnsent(s) {
  const u = s.unsent || {};
  const show = u.level === "warn" || u.level === "alarm";
  $("unsent").hidden = !show;
  if (!show) return;
  $("unsent").dataset.level = u.level;
  setText("unsent", t(u.level === "alarm" ? "unsent_alarm" : "unsent_warn", { n: s.backlog ?? "?", age: age(u.oldest_min || 0) }));
}

function renderTech(s) {
  const rows = allLights.map(([label, status, full]) => {
    const li = document.createElement("li");
    li.className = "light " + status;
    const b = document.createElement("b");
    b.textContent = label;
    li.append(document.createElement("i"), b, " ", full);
    return li;
  });
  for (const p of state.problems || []) {
    const li = document.createElement("li");
    li.textContent = [p.key, localized(p.message, p.message_en)].filter(Boolean).join(" · ");
    rows.push(li);
  }
  $("tech-list").replaceChildren(...rows);
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
  if (name === "manual_entry") {
    openManual();
  } else if (name === "people") {
    openSheet("people"); renderPeople(s);
  } else if (name === "box") {
    Box.courierFor = null; Box.value = ""; openSheet("boxes"); renderBox(s);
  } else if (name === "replace_tube") {
    const tube = s.tube && s.tube.count ? s.tube.id : s.last ? s.last.tube_id : "";
    ask(t("confirm_replace_tube", { tube }), [[t("yes"), "danger", () => command("replace_tube", tube ? { tube_id: tube } : {})], [t("cancel"), "", null]]);
  } else if (name === "void_last") {
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

// ------------------------------------------------------------------ sheets
function openSheet(id) {
  for (const el of document.querySelectorAll(".sheet")) el.hidden = el.id !== id;
}
function closeSheets() { for (const el of document.querySelectorAll(".sheet")) el.hidden = true; }

// the open tube's people, masked; any one voided (the void command, after a confirm)
function renderPeople(s) {
  const tube = s.tube;
  const people = (tube && tube.people) || [];
  setText("people-title", tube ? t("people_title", { tube: tube.id, n: people.length }) : t("no_people"));
  $("people-list").replaceChildren(...people.map((p, i) => {
    const li = document.createElement("li");
    li.className = p.voided ? "voided" : "";
    const n = document.createElement("span"); n.className = "n"; n.textContent = String(i + 1);
    const name = document.createElement("b"); name.textContent = p.name;
    const id = document.createElement("span"); id.className = "id"; id.textContent = p.id || "—";
    const b = document.createElement("button");
    b.type = "button"; b.className = "act danger"; b.dataset.rid = p.rid;
    b.textContent = p.voided ? t("voided") : t("void");
    b.disabled = !!p.voided;
    b.addEventListener("click", () => ask(t("void_one", { n: i + 1, who: `${p.name} ${p.id}`.trim() }),
      [[t("yes"), "danger", () => command("void", { record_id: p.rid })], [t("cancel"), "", null]]));
    li.append(n, name, id, b);
    return li;
  }));
  if (!people.length) { const li = document.createElement("li"); li.textContent = t("no_people"); $("people-list").append(li); }
}

// the box view: tubes in the open box, the packer's count on a keypad, close; closed
// boxes waiting for the courier, handed over by name (or by scanning the courier's code)
const Box = { value: "", courierFor: null, keys: "digits" };
function renderBox(s) {
  const box = s.box;
  setText("box-title", box ? t("box_title", { box: box.id, n: box.tubes, cap: box.capacity, people: box.people ?? "" }) : t("no_box"));
  $("box-tubes").replaceChildren(...(box ? box.tube_list || [] : []).map((tb) => {
    const li = document.createElement("li");
    li.textContent = `${tb.id} · ${tb.people}${lang === "en" ? "" : "人"}` + (tb.single ? " · " + t("single") : "");
    return li;
  }));
  const status = $("box-status");
  if (!box) { status.textContent = ""; status.className = ""; }
  else if (box.counted === null || box.counted === undefined) { status.textContent = t("count_prompt"); status.className = ""; }
  else if (box.blocked || box.counted !== box.tubes) { status.textContent = t("count_blocked", { listed: box.tubes, counted: box.counted }); status.className = "bad"; }
  else { status.textContent = t("count_ok", { listed: box.tubes }); status.className = "good"; }
  const closed = s.boxes_closed || [];
  const rows = closed.map((b) => {
    const div = document.createElement("div");
    div.className = "closed-box";
    const label = document.createElement("span");
    label.textContent = `${b.id} · ${b.tubes}${lang === "en" ? " tubes" : "管"} · ${b.people}${lang === "en" ? "" : "人"}`;
    const btn = document.createElement("button");
    btn.type = "button"; btn.className = "act" + (Box.courierFor === b.id ? " current" : ""); btn.dataset.box = b.id;
    btn.textContent = t("handover");
    btn.addEventListener("click", () => { Box.courierFor = b.id; Box.value = ""; Pinyin.clear(); Box.keys = "pinyin"; renderBox(state.snapshot); });
    div.append(label, btn);
    return div;
  });
  if (closed.length) { const h = document.createElement("p"); h.textContent = t("closed_boxes") + " · " + t("courier_hint"); rows.unshift(h); }
  $("box-closed").replaceChildren(...rows);
  const courier = Box.courierFor && closed.some((b) => b.id === Box.courierFor);
  if (!courier) { Box.courierFor = null; if (Box.keys === "pinyin") { Box.keys = "digits"; Box.value = ""; } }
  setText("box-entry-label", t(courier ? "courier_label" : "count_label"));
  setText("box-value", Box.value + (courier && Pinyin.buffer ? " " + Pinyin.buffer : ""));
  Keys.render($("box-keys"), Box.keys, onBoxKey);
  $("box-count").textContent = t(courier ? "handover_submit" : "count_submit");
  $("box-count").disabled = courier ? !Box.value.trim() : !box || Box.value === "";
  $("box-close").disabled = !box || !box.tubes || box.counted !== box.tubes || !!box.blocked;
}
function onBoxKey(k) {
  if (Box.keys === "pinyin" || Box.keys === "letters") Box.value = textKey(Box.value, k, Box, "box");
  else if (k === "BS") Box.value = Box.value.slice(0, -1);
  else if (k === "CLR") Box.value = "";
  else if (/^[0-9]$/.test(k) && Box.value.length < 4) Box.value = (Box.value === "0" ? "" : Box.value) + k;
  renderBox(state.snapshot);
}
function onBoxSubmit() {
  const s = state.snapshot;
  if (Box.courierFor) {
    const courier = Box.value.trim(), box = Box.courierFor;
    ask(t("confirm_handover", { box, courier }), [[t("yes"), "confirm", () => { command("handover_box", { courier, box_id: box }); Box.courierFor = null; Box.value = ""; Box.keys = "digits"; }], [t("cancel"), "", null]]);
  } else if (s.box && Box.value !== "") {
    command("box_count", { count: Number(Box.value) });
    Box.value = "";
  }
}

// a letter key for a name (pinyin or Latin): returns the new text. owner.keys says which
function textKey(text, k, owner, kind) {
  if (k.startsWith("MODE:")) { owner.keys = k === "MODE:letters" && owner.keys === "pinyin" ? "letters" : "pinyin"; Pinyin.clear(); return text; }
  if (owner.keys === "pinyin") {
    if (k.startsWith("CAND:")) { Pinyin.clear(); return text + k.slice(5); }
    if (/^[a-z]$/.test(k)) { Pinyin.feed(k); return text; }
    if (k === "SPACE") { const c = Pinyin.candidates(); Pinyin.clear(); return c.length ? text + c[0] : text; }
    if (k === "BS") { if (Pinyin.buffer) { Pinyin.back(); return text; } return [...text].slice(0, -1).join(""); }
    if (k === "CLR") { Pinyin.clear(); return ""; }
    return text;
  }
  if (k === "BS") return [...text].slice(0, -1).join("");
  if (k === "CLR") return "";
  if (k === "SPACE") return text + " ";
  return k.length === 1 ? text + k : text;
}

// manual entry
const M = { type: "resident_id", id_number: "", name: "", phone: "", field: "id_number", keys: "idnum", sentFlash: null };
const NUMBER_KEYS = { resident_id: "idnum", passport: "letters", hk_macau_permit: "letters", taiwan_permit: "digits", foreign_permanent: "letters" };
function openManual() {
  $("m-error").textContent = "";
  openSheet("manual");
  setField(M.type === "none" ? "name" : "id_number");
}
function setField(field) {
  M.field = field;
  M.keys = field === "name" ? "pinyin" : field === "phone" ? "digits" : NUMBER_KEYS[M.type] || "digits";
  Pinyin.clear();
  renderManual();
}
function renderManual() {
  $("m-types").replaceChildren(...Object.keys(TEXT["zh-CN"].id_types).map((type) => {
    const b = document.createElement("button");
    b.type = "button"; b.className = "act" + (M.type === type ? " current" : ""); b.dataset.type = type;
    b.textContent = pick("id_types", type);
    b.addEventListener("click", () => { M.type = type; M.id_number = ""; setField(type === "none" ? "name" : "id_number"); });
    return b;
  }));
  const none = M.type === "none";
  $("manual").querySelector("[data-field=id_number]").hidden = none;
  setText("m-id_number", M.id_number);
  const problem = none ? "" : checkNumber(M.type, M.id_number);
  const check = $("m-check");
  check.textContent = none ? t("no_number") : problem || t("number_ok");
  check.className = none ? "" : problem ? "bad" : "good";
  if ($("m-name").value !== M.name) $("m-name").value = M.name;
  $("m-name").placeholder = M.field === "name" && Pinyin.buffer ? Pinyin.buffer : "";
  setText("m-phone", M.phone);
  for (const el of $("manual").querySelectorAll(".fld")) el.classList.toggle("active", el.dataset.field === M.field);
  Keys.render($("m-keys"), M.keys, onManualKey);
}
function onManualKey(k) {
  if (M.field === "name") {
    M.name = textKey(M.name, k, M, "name").slice(0, 40);
  } else if (k.startsWith("MODE:")) {
    M.keys = k.slice(5);
  } else {
    const limit = M.field === "phone" ? 12 : 20;
    let v = M[M.field];
    if (k === "BS") v = v.slice(0, -1);
    else if (k === "CLR") v = "";
    else if (k.length === 1 && k !== " " && v.length < limit && (M.field !== "phone" || /[0-9]/.test(k))) v += k.toUpperCase();
    M[M.field] = v;
    // a complete resident ID number moves on to the name by itself
    if (M.field === "id_number" && M.type === "resident_id" && v.length === 18 && !checkNumber(M.type, v)) { setField("name"); return; }
  }
  renderManual();
}
function onNameKeydown(e) {
  // a USB keyboard feeds the same pinyin buffer; a system IME's composition passes through
  if (M.keys !== "pinyin" || e.isComposing || e.ctrlKey || e.altKey || e.metaKey) return;
  let k = null;
  if (/^[a-zA-Z]$/.test(e.key)) k = e.key.toLowerCase();
  else if (Pinyin.buffer && /^[1-8]$/.test(e.key)) k = "CAND:" + (Pinyin.candidates()[Number(e.key) - 1] || "");
  else if (Pinyin.buffer && (e.key === " " || e.key === "Enter")) k = "SPACE";
  else if (Pinyin.buffer && e.key === "Backspace") k = "BS";
  if (k === null || k === "CAND:") return;
  e.preventDefault();
  onManualKey(k);
}
function onManualSubmit() {
  const name = M.name.trim();
  const problem = !name ? t("need_name") : M.type !== "none" ? checkNumber(M.type, M.id_number)
    : !M.phone ? t("need_phone") : "";
  const phoneBad = M.phone && !/^[0-9]{7,12}$/.test(M.phone) ? t("bad_phone") : "";
  if (problem || phoneBad) { $("m-error").textContent = problem || phoneBad; tone("error"); return; }
  const args = { name, id_type: M.type };
  if (M.type !== "none") args.id_number = M.id_number;
  if (M.phone) args.phone = M.phone;
  M.sentFlash = state ? state.flash.n : 0;
  closeSheets();
  // the full number leaves the page once sent (kept in memory only, for a refusal to reopen)
  $("m-id_number").textContent = ""; $("m-name").value = ""; $("m-phone").textContent = "";
  command("manual_entry", args);
}
// after a manual entry is sent: a refusal reopens the form with its reason (nothing typed
// is lost); a registration clears it for the next person
function afterManual(s) {
  if (M.sentFlash === null || state.flash.n === M.sentFlash) return;
  M.sentFlash = null;
  if (s.level === "error") {
    openSheet("manual");
    renderManual();
    $("m-error").textContent = localized(s.message, s.message_en);
  } else {
    Object.assign(M, { type: "resident_id", id_number: "", name: "", phone: "" });
    renderManual();
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
  for (const b of document.querySelectorAll("[data-close]")) b.addEventListener("click", closeSheets);
  $("lights").addEventListener("click", () => { openSheet("tech"); renderTech(state ? state.snapshot : {}); });
  for (const el of $("manual").querySelectorAll(".fld")) el.addEventListener("click", () => setField(el.dataset.field));
  $("m-name").addEventListener("keydown", onNameKeydown);
  $("m-name").addEventListener("input", () => { M.name = $("m-name").value; });
  $("m-submit").addEventListener("click", onManualSubmit);
  $("box-count").addEventListener("click", onBoxSubmit);
  $("box-close").addEventListener("click", () => command("close_box"));
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
