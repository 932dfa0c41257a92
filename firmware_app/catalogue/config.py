"""`swabkiosk config check`: each problem of a station file (``config.``)."""

MESSAGES: dict[str, tuple[str, str]] = {
    # the command line
    "config.description": ("检查站点配置文件。", "Check a station file."),
    "config.help_check": ("校验站点配置文件；无问题退出码 0，否则为 1 并列出全部问题",
                          "validate a station file; exit 0 if good, 1 with every problem"),
    "config.help_json": ("以 JSON 列表输出问题", "problems as a JSON list"),
    "config.help_demo": ("接受演示用的授权公钥（模拟、培训）", "accept the demo authority keys (simulation, training)"),
    "config.header": ("{file}：{n} 个问题；采样程序不会用此文件启动",
                      "{file}: {n} problem(s); the kiosk will not start with this file"),
    "config.ok": ("{file}：无问题", "{file}: OK"),
    "config.line": ("第{line}行：", "line {line}: "),
    # the file as a whole
    "config.unreadable": ("无法读取文件：{reason}", "cannot read the file: {reason}"),
    "config.not_utf8": ("不是 UTF-8 文本", "not UTF-8 text"),
    "config.not_text": ("不是文本", "not text"),
    "config.too_large": ("文件太大（{n} 个字符；站点文件只有几 KB，最多 {most}）",
                         "file too large ({n} characters; a station file is a few KB, at most {most})"),
    "config.too_nested": ("括号嵌套超过 {n} 层：不是站点文件", "brackets nested more than {n} deep: not a station file"),
    "config.bad_toml": ("不是有效的 TOML：{reason}", "not valid TOML: {reason}"),
    "config.bad_toml_kind": ("不是有效的 TOML（{reason}）", "not valid TOML ({reason})"),
    # what the schema says (jsonschema's own English words kept as the detail)
    "config.unknown_key": ("未知的键（拼写错误？）", "unknown key (misspelt?)"),
    "config.missing_key": ("缺少必填的键", "required key is missing"),
    "config.not_matching": ("此处不允许 {value}（须符合 {pattern}）", "{value} is not allowed here (must match {pattern})"),
    "config.schema_type": ("类型不对（{detail}）", "{detail}"),
    "config.schema_choice": ("不是允许的取值（{detail}）", "{detail}"),
    "config.schema_range": ("数值超出范围（{detail}）", "{detail}"),
    "config.schema_length": ("长度不对（{detail}）", "{detail}"),
    "config.schema_other": ("取值不符合要求（{detail}）", "{detail}"),
    # what a schema cannot say
    "config.not_finite": ("不是有限数值（不允许 nan 和 inf）", "not a finite number (nan and inf are not allowed)"),
    "config.bad_key": ("不是 Ed25519 公钥（{reason}）；请粘贴 `swabkiosk qr keygen` 的输出",
                       "not an Ed25519 public key ({reason}); paste the output of `swabkiosk qr keygen`"),
    "config.demo_key": ("演示用公钥（其私钥已公开）：请填入区里的真实公钥",
                        "a DEMO key (its private key is public): put the district's real key here"),
    "config.pattern_long": ("超过 {n} 个字符", "longer than {n} characters"),
    "config.pattern_nested": ("嵌套分组超过 {n} 层", "more than {n} nested groups"),
    "config.pattern_bad": ("不是正则表达式（{reason}）", "not a regular expression ({reason})"),
    "config.printer_target": (
        '不是打印机目标：请用 "serial:/dev/..."、"usb:0xVID:0xPID"、"tcp://HOST:9100" 或 "file:/dev/usb/lp0"',
        'not a printer target: use "serial:/dev/...", "usb:0xVID:0xPID", "tcp://HOST:9100" or "file:/dev/usb/lp0"'),
    "config.ca_file": ("mqtts:// 需要 ca_file（服务器的 CA 证书）", "mqtts:// needs ca_file (the broker's CA certificate)"),
    "config.wrong_username": (
        '"{username}" 不是本站的 "{root}"（区/点/台）：服务器会丢弃本站发送的每一条记录',
        '"{username}" is not this station\'s "{root}" (district/site/table): the broker would drop every record '
        'it sends'),
    "config.wrong_cn": (
        '客户端证书属于 "{cn}"，不是本站的 "{root}"（区/点/台）：服务器会丢弃本站发送的每一条记录',
        'the client certificate is for "{cn}", not this station\'s "{root}" (district/site/table): the broker '
        'would drop every record it sends'),
}
