// The glove-sized on-screen keys of the kiosk page and its small built-in pinyin input.
//
// Keys.render(container, mode, onKey) draws one of: "digits" (0-9, backspace), "idnum"
// (0-9, X, backspace, ABC), "letters" (A-Z, 0-9 row, backspace, 123), "pinyin" (a-z with a
// candidate bar, backspace, ABC for Latin letters). onKey gets a character, "BS", "CLR",
// or "MODE:<mode>". The pinyin mode keeps its own buffer: Pinyin.feed/candidates/pick.
//
// The pinyin table holds ~350 characters common in Chinese names (surnames and given
// names) by syllable, most common first. A name with a character not in it is typed
// with a USB keyboard: the same pinyin buffer takes its letters (1-6 or Space picks), and
// a system input method (fcitx5), where the image has one, composes straight into the
// field untouched; or, last resort, the name is entered in Latin letters (ZHANG XIAOMING).
"use strict";

const PINYIN = {
  a: "阿安爱", ai: "艾爱", an: "安", bai: "白柏", bao: "宝包保", bei: "贝蓓", bin: "彬斌", bing: "冰兵",
  bo: "博波柏", cai: "蔡才", cao: "曹", chang: "常昌", chao: "超朝", chen: "陈晨辰", cheng: "程成诚",
  chun: "春", cui: "崔", dai: "戴", dan: "丹", deng: "邓", di: "迪娣", ding: "丁鼎", dong: "董东冬",
  du: "杜", fan: "范凡", fang: "方芳", fei: "飞菲", feng: "冯峰凤锋", fu: "傅付福富", gang: "刚",
  gao: "高", ge: "葛歌", guang: "光", gui: "桂", guo: "郭国", hai: "海", han: "韩涵寒", hao: "浩豪好",
  he: "何贺和", hong: "洪红宏", hu: "胡虎", hua: "华花", huang: "黄", hui: "慧辉惠", jia: "贾佳家嘉",
  jian: "建健剑", jiang: "江蒋姜", jie: "杰洁", jin: "金晋锦", jing: "静晶敬婧", jun: "军君俊",
  kai: "凯", kang: "康", lan: "兰岚", lei: "雷磊", li: "李黎丽力莉", liang: "梁亮", lin: "林琳霖",
  ling: "玲凌灵", liu: "刘柳", long: "龙", lu: "卢陆鲁路露", luo: "罗", ma: "马", mei: "梅美",
  meng: "孟萌梦", min: "敏民", ming: "明铭鸣", na: "娜", ning: "宁", pan: "潘", peng: "彭鹏",
  ping: "平萍", qi: "齐琪奇祺", qian: "钱倩谦", qiang: "强", qin: "秦琴勤", qing: "青清晴庆",
  rong: "荣蓉", rui: "瑞睿", shen: "沈", sheng: "胜生", shi: "石史师诗世", shu: "舒淑", shuang: "双",
  song: "宋松", su: "苏", sun: "孙", tang: "唐汤", tao: "陶涛", tian: "田天甜", ting: "婷霆",
  wan: "万婉", wang: "王汪", wei: "魏韦伟卫薇威", wen: "文温", wu: "吴武伍", xi: "希曦熙",
  xia: "夏霞", xiang: "向翔祥香", xiao: "肖萧小晓潇", xin: "辛欣新鑫心", xing: "邢星兴", xiu: "秀",
  xu: "徐许旭", xuan: "宣轩萱", xue: "薛雪学", yan: "严颜燕艳妍彦", yang: "杨阳洋扬", yao: "姚瑶",
  ye: "叶业", yi: "易怡一艺依毅", yin: "尹殷银", ying: "英莹颖樱", yong: "永勇", yu: "余于俞雨宇玉瑜",
  yuan: "袁元媛远", yue: "岳月悦越", yun: "云芸", zeng: "曾", zhang: "张章", zhao: "赵昭", zheng: "郑正",
  zhi: "志智芝", zhong: "钟忠中", zhou: "周舟", zhu: "朱祝竹", zi: "子梓紫", zou: "邹",
};

const Pinyin = {
  buffer: "",
  feed(ch) { if (this.buffer.length < 6) this.buffer += ch.toLowerCase(); },
  back() { this.buffer = this.buffer.slice(0, -1); },
  clear() { this.buffer = ""; },
  // exact syllable first, then syllables it starts (x -> xiao, xin, ...), at most 8
  candidates() {
    const b = this.buffer;
    if (!b) return [];
    const exact = [...(PINYIN[b] || "")];
    const more = Object.keys(PINYIN).filter((k) => k !== b && k.startsWith(b)).flatMap((k) => [...PINYIN[k]]);
    return [...new Set([...exact, ...more])].slice(0, 8);
  },
};

const LAYOUTS = {
  digits: [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["CLR", "0", "BS"]],
  idnum: [["1", "2", "3", "X"], ["4", "5", "6", "MODE:letters"], ["7", "8", "9", "CLR"], ["0", "BS"]],
  letters: [["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"], ["Q", "W", "E", "R", "T", "Y", "U", "I", "O", "P"], ["A", "S", "D", "F", "G", "H", "J", "K", "L"],
    ["Z", "X", "C", "V", "B", "N", "M", "BS"], ["MODE:idnum", "SPACE", "CLR"]],
  pinyin: [["q", "w", "e", "r", "t", "y", "u", "i", "o", "p"], ["a", "s", "d", "f", "g", "h", "j", "k", "l"],
    ["z", "x", "c", "v", "b", "n", "m", "BS"], ["MODE:letters", "SPACE", "CLR"]],
};
const KEY_LABELS = {
  BS: "⌫", CLR: "清空", SPACE: "空格", "MODE:letters": "ABC", "MODE:idnum": "123", "MODE:pinyin": "拼音",
};

const Keys = {
  render(container, mode, onKey) {
    container.dataset.mode = mode;
    const rows = [];
    if (mode === "pinyin") {
      const bar = document.createElement("div");
      bar.className = "cands";
      const buf = document.createElement("span");
      buf.className = "buf";
      buf.textContent = Pinyin.buffer || "拼音";
      bar.append(buf, ...Pinyin.candidates().map((ch, i) => Keys.key(ch, "CAND:" + ch, "cand", onKey, i + 1)));
      rows.push(bar);
    }
    for (const row of LAYOUTS[mode]) {
      const div = document.createElement("div");
      div.className = "row";
      div.append(...row.map((k) => Keys.key(KEY_LABELS[k] || k, k, k.length > 1 ? "fn" : "", onKey)));
      rows.push(div);
    }
    container.replaceChildren(...rows);
  },
  key(label, value, cls, onKey, n) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "key " + (cls || "");
    b.dataset.key = value;
    b.textContent = label;
    if (n) b.dataset.n = n;
    b.addEventListener("click", () => onKey(value));
    return b;
  },
};

// Checks that mirror the station's (firmware_app/station/people.py), live while typing;
// the station checks again. "" = fine, else the reason in zh-CN.
const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
function idCheckChar(first17) {
  return "10X98765432"[[...first17].reduce((n, d, i) => n + Number(d) * ID_WEIGHTS[i], 0) % 11];
}
function checkNumber(type, n) {
  if (type === "none") return "";
  if (!n) return "请输入证件号";
  if (type === "resident_id") {
    if (!/^[0-9]{17}[0-9X]$/.test(n)) return `身份证号应为18位（已输入${n.length}位）`;
    const y = +n.slice(6, 10), m = +n.slice(10, 12), d = +n.slice(12, 14);
    const birth = new Date(y, m - 1, d);
    if (birth.getMonth() !== m - 1 || birth.getDate() !== d || y < 1900 || birth > new Date()) return "出生日期不对";
    if (idCheckChar(n.slice(0, 17)) !== n[17]) return "校验位不对，请核对";
    return "";
  }
  const patterns = {
    passport: [/^[A-Z0-9]{5,20}$/, "护照号应为5-20位字母或数字"],
    hk_macau_permit: [/^[HM][0-9]{8}([0-9]{2})?$/, "港澳通行证：H或M加8位数字"],
    taiwan_permit: [/^[0-9]{8}([0-9]{2})?$/, "台湾通行证：8位数字"],
    foreign_permanent: [/^([A-Z]{3}[0-9]{12}|9[0-9]{16}[0-9X])$/, "永居证：3个字母加12位数字，或9开头18位"],
  };
  const [re, why] = patterns[type] || [/.*/, ""];
  if (!re.test(n)) return why;
  if (type === "foreign_permanent" && n.length === 18 && idCheckChar(n.slice(0, 17)) !== n[17]) return "校验位不对，请核对";
  return "";
}
