"""The uplink: refused district commands (``uplink.``) and broker failures (``broker.``).

A broker failure is told in words a volunteer understands; the raw reason (the TLS
library's or paho's text, the broker's address, a file name) is kept apart, in the
uplink state's ``error_raw``, for the technician (`swabkiosk status`, `doctor`).
"""

MESSAGES: dict[str, tuple[str, str]] = {
    # cmd/<name> refused before it reaches the station (answered on cmd/<name>/response)
    "uplink.cmd_not_bytes": ("命令格式无效", "command payload is not bytes"),
    "uplink.cmd_too_large": ("命令过大（超过 {limit} 字节）", "command larger than {limit} bytes"),
    "uplink.cmd_too_deep": ("命令嵌套过深（超过 {limit} 层）", "command nested deeper than {limit} levels"),
    "uplink.cmd_not_json": ("命令不是有效的 JSON", "command payload is not valid JSON"),
    "uplink.cmd_not_object": ("命令必须是 JSON 对象", "command payload must be a JSON object"),
    "uplink.cmd_bad_txn": ("缺少或无效的事务号 txn", "missing or invalid txn (1-64 of A-Z a-z 0-9 . _ : -)"),
    "uplink.cmd_retained": ("拒绝保留的命令", "retained command refused: it would be replayed at every reconnect"),
    "uplink.cmd_failed": ("命令处理失败（{error}）", "command handler failed: {error}"),
    # cmd/resend
    "uplink.resend_bad_range": ("序号范围无效", "from_seq must be >= 1 and <= to_seq"),
    "uplink.resend_too_many": ("一次最多重发 {limit} 条", "at most {limit} seqs per resend (split the range)"),
    "uplink.resend_busy": ("重发请求过多（已有 {limit} 个在等待），请稍后再试", "{limit} resends already waiting: retry later"),
    "uplink.resent": ("已重发 {count} 条", "resent {count} records"),
    # the broker link, in the words the screen and `swabkiosk status` show
    "broker.cert_unverified": ("无法验证服务器证书（CA 文件不对、证书过期或主机名不符）",
                               "Cannot verify the broker's certificate (wrong CA file, expired certificate or "
                               "host name mismatch)"),
    "broker.cert_rejected": ("服务器拒绝了本机的客户端证书", "The broker rejected this station's client certificate"),
    "broker.cert_invalid": ("客户端证书或私钥文件无效", "Client certificate or key file is invalid"),
    "broker.cert_missing": ("证书文件不存在", "Certificate file not found"),
    "broker.tls_failed": ("与服务器的加密（TLS）连接失败", "TLS connection failed"),
    "broker.refused": ("服务器拒绝连接（未运行或端口不对）", "Broker refused the connection (not running or wrong port)"),
    "broker.unreachable": ("无法连接服务器", "Cannot reach the broker"),
    "broker.connect_failed": ("连接服务器失败", "Connection failed"),
    "broker.login_refused": ("服务器拒绝登录（用户名/密码或证书身份无权限）",
                             "Broker refused the login (username/password or certificate identity not allowed)"),
    "broker.connack_refused": ("服务器拒绝连接", "Broker refused the connection"),
    "broker.lost": ("与服务器的连接中断", "Connection to the broker lost"),
    "broker.tls_closed": ("服务器在登录前关闭了 TLS 连接：很可能拒绝了本机的客户端证书（不是区级 CA 签发、已过期或被吊销）",
                          "The broker closed the TLS connection before login: it most likely rejected this "
                          "station's client certificate (not signed by the district CA, expired or revoked)"),
    "broker.closed_before_login": ("服务器在登录前断开", "The broker closed the connection before login"),
    "broker.uplink_error": ("上传程序出错", "Uplink error"),
    "broker.stopped": ("已停止", "stopped"),
    # a technician's line: the words, then the raw reason (`doctor`, the log)
    "broker.with_raw": ("{words}（{raw}）", "{words} ({raw})"),
}
