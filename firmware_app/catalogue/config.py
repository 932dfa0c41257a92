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
    # a signed push from the district refused (firmware_app/signedpush.py): the command's answer
    "config.push_off": ("本机没有 [authority] district_keys：不接受远程推送（请在启动分区配置区里的公钥）",
                        "this kiosk has no [authority] district_keys: pushes are off (provision the district's key "
                        "on the boot partition)"),
    "config.push_unsigned": ("不是签名推送（SWBPUSH1 封装）：请用 `swabkiosk district-sign` 签名",
                             "not a signed push (SWBPUSH1 envelope): sign it with `swabkiosk district-sign`"),
    "config.push_oversized": ("签名推送超过 {most} 个字符", "signed push longer than {most} characters"),
    "config.push_not_base64": ("签名推送不是 base64url：被截断或被改动", "signed push is not base64url: truncated or altered"),
    "config.push_undecodable": ("签名推送无法解码", "signed push cannot be decoded"),
    "config.push_no_kid": ("签名推送没有密钥编号", "signed push has no key id"),
    "config.push_unknown_key": ("签名所用的密钥不受本机信任（{kid}）；只认 [authority] district_keys",
                                "signed by a key this kiosk does not trust ({kid}); only [authority] district_keys "
                                "count"),
    "config.push_forged": ("签名不符：推送是伪造的或被改动过", "signature does not match: forged or altered push"),
    "config.push_incomplete": ("签名推送缺少 kind、to、version、issued_at、expires_at 或 body",
                               "signed push lacks kind, to, version, issued_at, expires_at or body"),
    "config.push_wrong_kind": ("签名的是 {signed} 推送，却作为 {sent} 推送发送", "a signed {signed} push sent as a {sent} push"),
    "config.push_other_station": ("发给站点 {to}，本机是 {here}", "addressed to station {to}, this is {here}"),
    "config.push_other_site": ("发给采样点 {to}，本台位于 {here}", "addressed to site {to}, this table is at {here}"),
    "config.push_replay": ("版本 {version} 不比上次接受的 {last} 新（重放或回退）",
                           "version {version} is not newer than {last}, the last one accepted (a replay or a rollback)"),
    "config.push_validity": ("有效期须为正且最多 {days} 天", "validity must be positive and at most {days} days"),
    "config.push_plain_mqtt": ("只接受经 mqtts:// 的推送；本机与服务器的连接未加密（TLS）",
                               "pushes are accepted over mqtts:// only; this kiosk's broker link is not TLS"),
    "config.push_expired": ("签名推送已过期", "signed push has expired"),
    "config.push_not_yet_valid": ("签名推送的签发时间比本机时钟早一天以上", "signed push is issued more than a day ahead of this kiosk's clock"),
    # `swabkiosk district-sign`
    "config.sign_description": (
        "用区里的密钥签名站点配置文件或志愿者名单；输出要发布到 swab/v1/<district>/<site>/<table>/cmd/push_config "
        "或 cmd/push_volunteers 的 JSON（或只输出封装）。",
        "Sign a station file or volunteer list with the district's key; prints the JSON payload to publish on "
        "swab/v1/<district>/<site>/<table>/cmd/push_config or cmd/push_volunteers (or only the envelope)."),
    "config.sign_help_file": ("站点配置文件（TOML）或志愿者名单（JSON）", "the station file (TOML) or the volunteer list (JSON)"),
    "config.sign_help_key": ("区里的 Ed25519 私钥（swabkiosk qr keygen）", "the district's Ed25519 private key (swabkiosk qr keygen)"),
    "config.sign_help_device": ("只发给这一台", "the one station it is for"),
    "config.sign_help_site": ("与 --district 一起：该采样点的每一台", "with --district: every table of this site"),
    "config.sign_help_version": ("须大于上次推送的版本（默认：当前 unix 秒）", "must exceed the last one pushed (default: now, unix s)"),
    "config.sign_help_txn": ("包成 {{txn, args}}，可直接用 mosquitto_pub -f 发布", "wrap in {{txn, args}} ready for mosquitto_pub -f"),
    "config.sign_help_envelope": ("只输出 SWBPUSH1 字符串", "print only the SWBPUSH1 string"),
    "config.sign_kind": ("kind 须为以下之一：{kinds}", "kind must be one of {kinds}"),
    "config.sign_target": ("指定站点（device_id）或采样点（district 和 site），不能两者都指定",
                           "name the station (device_id) or the site (district and site), not both"),
    "config.sign_failed": ("swabkiosk district-sign：{reason}", "swabkiosk district-sign: {reason}"),
}
