"""What the runtime shows and says itself (``runtime.``), and how device states read on the
screen (``devices.``: the short words in a status light's slot; the raw reason stays in the
technician panel)."""

MESSAGES: dict[str, tuple[str, str]] = {
    # a store repair or import at start (firmware_app/runtime.py _announce_repairs)
    "runtime.repaired_lost": (
        "存储曾损坏并已修复：保留 {kept} 条记录，{lost} 条无法恢复（原文件已保存：{moved}），请联系技术员",
        "The store was damaged and repaired: {kept} records kept, {lost} could not be recovered "
        "(original kept in {moved}); call the technician"),
    "runtime.repaired_ok": (
        "存储已升级或修复：{kept} 条记录全部保留（原文件已保存：{moved}）",
        "The store was upgraded or repaired: all {kept} records kept (original kept in {moved})"),
    "runtime.store_light": ("已修复：保留 {kept} 条，丢失 {lost} 条（{moved}）",
                            "repaired: {kept} kept, {lost} lost ({moved})"),
    # a step that failed or could not be stored
    "runtime.internal_error": ("内部错误，请重试", "Internal error, please try again"),
    "runtime.not_saved": ("未保存，请勿继续：{reason}", "NOT saved, do not continue: {reason}"),
    "runtime.store_failed": ("存储写入失败，请联系技术员", "the store could not write; call the technician"),
    "runtime.say_not_saved": ("保存失败", "saving failed"),
    "runtime.label_not_printed": ("标签未能打印：{reason}，请扫“补打标签”",
                                  "Label not printed: {reason}; scan 'reprint label'"),
    "runtime.printer_fault": ("打印机故障", "printer fault"),
    # the broker light when records are delivered around, not delivered
    "runtime.broker_set_aside": (
        "服务器拒收 {n} 条记录（序号 {first} 起；已保存，跳过继续上传；请联系技术人员）",
        "the broker refuses {n} record(s) (seq {first}...): kept and skipped, the rest is sent; "
        "call the technician"),
    # records unsent too long: spoken once per level
    "runtime.age_hours": ("{h}小时{m}分钟", "{h} h {m} min"),
    "runtime.age_minutes": ("{m}分钟", "{m} min"),
    "runtime.say_unsent_alarm": ("记录已{age}未上传，请联系技术员", "records unsent for {age}: call the technician"),
    "runtime.say_unsent_warn": ("有记录{age}未上传，请检查网络", "records unsent for {age}: check the network"),
    # how a long tube, box or record id is read out: its last four digits, one by one
    "runtime.digits": ("零一二三四五六七八九", "0123456789"),
    "runtime.id_tail": ("尾号{digits}", "ending {digits}"),
    # a device's or the broker's raw reason in a few words (the page's status lights)
    "devices.paper": ("缺纸", "paper"),
    "devices.refused": ("被拒绝", "refused"),
    "devices.timeout": ("超时", "timeout"),
    "devices.unplugged": ("未连接", "unplugged"),
    "devices.io_error": ("读写错误", "I/O error"),
    "devices.auth": ("认证失败", "auth"),
    "devices.tls": ("证书错误", "TLS"),
    "devices.dns": ("域名错误", "DNS"),
    "devices.network": ("网络不通", "network"),
    "devices.cover_open": ("盖未关", "cover open"),
    "devices.fault": ("故障", "fault"),
    # JSON that is refused before it is parsed (firmware_app/boundedjson.py): a screen tap, a command
    "runtime.json_not_number": ("{name} 不是 JSON 数值", "{name} is not a JSON number"),
    "runtime.json_too_many_bytes": ("太大（{n} 字节，最多 {most}）", "too large ({n} bytes, at most {most})"),
    "runtime.json_too_many_chars": ("太大（{n} 个字符，最多 {most}）", "too large ({n} characters, at most {most})"),
    "runtime.json_not_utf8": ("不是 UTF-8 文本", "not UTF-8 text"),
    "runtime.json_not_text": ("不是文本", "not text"),
    "runtime.json_too_deep": ("嵌套超过 {n} 层", "nested more than {n} deep"),
    "runtime.json_bad": ("不是 JSON（{reason}）", "not JSON ({reason})"),
}
