"""What the code and ID parsers say: signed QR codes (firmware_app/qr.py), resident ID
numbers (firmware_app/idnumber.py), the certified-volunteer list (firmware_app/volunteers.py).

The parsers' technical detail (which check of a code failed, the key id) is kept apart in
``QrError.raw`` for the technician, never inside these texts.
"""

MESSAGES: dict[str, tuple[str, str]] = {
    # -- signed codes (SWB1, docs/qr-payload.md) ------------------------------
    "qr.oversized": ("二维码内容过长（超过{max}个字符），不是有效的采样码",
                     "code is longer than {max} characters; not a sampling code"),
    "qr.malformed": ("二维码不完整或无法识别，请重新扫描", "code is incomplete or unreadable; scan again"),
    "qr.kind_personal": ("采样码", "sampling code"),
    "qr.kind_operator": ("志愿者证", "operator certificate"),
    "qr.unknown_key": ("{what}的签发机构不被本机认可", "{what} signed by a key this kiosk does not trust"),
    "qr.forged": ("二维码签名无效（伪造或被篡改）", "signature does not match: forged or altered code"),
    "qr.expired": ("二维码已过期，请刷新后重新出示", "code has expired; refresh it and show it again"),
    "qr.not_yet_valid": ("二维码签发时间在未来（本机时钟或二维码有误）", "code is issued in the future (kiosk clock or code wrong)"),
    "qr.too_old": ("二维码签发太久，请刷新后重新出示", "code was issued too long ago; refresh it and show it again"),
    "qr.bad_id_number": ("二维码中的{reason}", "ID number in the code: {reason}"),
    # -- authority keys (the station file, qr keygen's files) ------------------
    "qr.key_not_base64": ("不是 base64", "not base64"),
    "qr.key_length": ("解码后是 {size} 字节，Ed25519 公钥应为 32 字节", "decodes to {size} bytes, an Ed25519 public key has 32"),
    "qr.key_not_private": ("{path} 不是 Ed25519 私钥", "{path} is not an Ed25519 private key"),
    # -- swabkiosk qr (keygen, issue: a technician's tool; it prints the English) --
    "qr.cli_key_exists": ("swabkiosk qr keygen：{path} 已存在，不覆盖密钥", "swabkiosk qr keygen: {path} exists; refusing to overwrite a key"),
    "qr.cli_key_written": ("密钥号 {key_id}；私钥已写入 {path}（权限 0600）", "key id {key_id}; private key written to {path} (mode 0600)"),
    "qr.cli_operator_needs": ("swabkiosk qr issue --operator 需要 --cert-id 和 --name",
                              "swabkiosk qr issue --operator needs --cert-id and --name"),
    "qr.cli_person_needs": ("swabkiosk qr issue --person 需要 --name 和 --id-number",
                            "swabkiosk qr issue --person needs --name and --id-number"),
    "qr.cli_failed": ("swabkiosk qr {action}：{problem}", "swabkiosk qr {action}: {problem}"),
    # -- resident ID numbers (GB 11643) ---------------------------------------
    "idnumber.length": ("身份证号应为18位，实际{length}位", "ID number must have 18 characters, got {length}"),
    "idnumber.characters": ("身份证号含非法字符", "ID number contains characters other than digits and a final X"),
    "idnumber.region": ("身份证号地区码{region}不存在", "ID number region code {region} does not exist"),
    "idnumber.no_such_date": ("身份证号出生日期{date}不存在", "ID number birth date {date} is not a real date"),
    "idnumber.implausible_date": ("身份证号出生日期{date}不合理", "ID number birth date {date} is before 1900 or in the future"),
    "idnumber.check_char": ("身份证号校验位错误（可能输错或读错）", "ID number check character is wrong (mistyped or misread)"),
    # -- the certified-volunteer list -----------------------------------------
    "volunteers.not_a_list": ("志愿者名单应为对象 {{\"volunteers\": [...]}}", 'volunteer list must be an object {{"volunteers": [...]}}'),
    "volunteers.too_many": ("志愿者名单有 {entries} 条，最多 {max} 条", "volunteer list has {entries} entries, at most {max}"),
    "volunteers.entry": ("第 {i} 条：{problem}", "volunteers[{i}]: {problem}"),
    "volunteers.separator": ("；", "; "),
    "volunteers.entry_not_object": ("不是对象", "not an object"),
    "volunteers.missing": ("缺少 {what}", "{what} missing"),
    "volunteers.not_one_line": ("{what} 不是一行、最多 {max} 个字符的文字", "{what} is not a one-line text of at most {max} characters"),
    "volunteers.cert_id_chars": ("cert_id 只能含字母、数字和 - _ . /", "cert_id must be letters, digits and - _ . /"),
    "volunteers.revoked_bool": ("revoked 只能是 true 或 false", "revoked must be true or false"),
    "volunteers.expires_date": ("expires 必须是日期 YYYY-MM-DD", "expires must be a date YYYY-MM-DD"),
    "volunteers.expires_no_such_day": ("expires {value} 不是真实的日期", "expires {value} is not a real date"),
    "volunteers.listed_twice": ("cert_id {cert_id} 重复出现", "cert_id {cert_id} listed twice"),
    "volunteers.unreadable": ("{where}：无法读取（{problem}）", "{where}: {problem}"),
    "volunteers.not_listed": ("证书{cert_id}不在持证志愿者名单中，不能上岗", "certificate {cert_id} is not on the certified list"),
    "volunteers.revoked": ("证书{cert_id}已被撤销，不能上岗", "certificate {cert_id} has been revoked"),
    "volunteers.expired": ("证书{cert_id}已于{expires}过期，请重新培训认证",
                           "certificate {cert_id} expired on {expires}; retraining needed"),
}
