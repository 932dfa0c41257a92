"""`swabkiosk doctor`: each check's verdict and the fix to try (``doctor.``)."""

MESSAGES: dict[str, tuple[str, str]] = {
    # the command line
    "doctor.description": ("自检：设备、区平台、磁盘、时钟、配置。", "Self-test: devices, broker, disk, clock, config."),
    "doctor.help_config": ("站点配置文件（默认 {default}）", "station file (default {default})"),
    "doctor.help_data_dir": ("要检查的存储（默认：[store] data_dir）", "store to check (default: [store] data_dir)"),
    "doctor.help_json": ("以 JSON 输出各项检查", "the checks as JSON"),
    "doctor.fix_label": ("处理", "fix"),
    "doctor.summary_failed": ("{n} 项检查未通过", "{n} check(s) failed"),
    "doctor.summary_ok": ("全部检查通过", "all checks passed"),
    # a device's own words (its driver's reason), or where it failed and why
    "doctor.reason": ("{reason}", "{reason}"),
    "doctor.where_reason": ("{where}：{reason}", "{where}: {reason}"),
    # the ID-card reader and the scanner
    "doctor.port_missing": ("未找到 {port}：设备未插入或未被识别",
                            "{port} not found: the device is not plugged in or not recognised"),
    "doctor.port_no_answer": ("{port} 无应答", "no answer on {port}"),
    "doctor.port_answers": ("{port} 有应答", "answers on {port}"),
    "doctor.port_in_use": ("{port} 正被运行中的采样程序占用（其屏幕显示设备状态）",
                           "{port} is held by the running kiosk (its screen shows the device's state)"),
    "doctor.fix_stop_service": ("先停止服务再在此测试设备：systemctl stop swabkiosk",
                                "stop the service to test the device here: systemctl stop swabkiosk"),
    "doctor.fix_idcard": ("检查读卡器 USB 线和 /dev/swabkiosk-idcard（udev 规则）；[devices.idcard] 的波特率",
                          "check the reader's USB cable and /dev/swabkiosk-idcard (udev rule); baud rate in "
                          "[devices.idcard]"),
    "doctor.fix_scanner": ("检查扫码枪 USB 线和 /dev/swabkiosk-scanner（udev 规则）；将扫码枪设为 USB-CDC 串口模式",
                           "check the scanner's USB cable and /dev/swabkiosk-scanner (udev rule); set the scanner "
                           "to USB-CDC serial mode"),
    # the printer
    "doctor.printer_bad_target": ("目标 {target}：{reason}", "target {target}: {reason}"),
    "doctor.printer_no_answer": ("{target}：无应答", "{target}: no answer"),
    "doctor.printer_ready": ("{target}：就绪，有纸", "{target}: ready, paper in"),
    "doctor.printer_ready_note": ("{target}：就绪，有纸（{reason}）", "{target}: ready, paper in ({reason})"),
    "doctor.fix_paper_low": ("请备好新纸卷", "put a new roll ready"),
    "doctor.fix_printer": ("检查电源、线缆和纸；[devices.printer] target；"
                           "`swabkiosk probe printer TARGET --test-label`",
                           "check power, cable and paper; [devices.printer] target; "
                           "`swabkiosk probe printer TARGET --test-label`"),
    # the camera
    "doctor.camera_off": ('未配置（[devices.camera] source = "none"）', 'not configured ([devices.camera] source = "none")'),
    "doctor.camera_slow": ("{source}：{seconds} 秒内没有画面", "{source}: no frame within {seconds} s"),
    "doctor.camera_no_frames": ("{source}：没有画面", "{source}: delivers no frames"),
    "doctor.camera_ok": ("{source}：{n} 帧 {w}x{h}", "{source}: {n} frames {w}x{h}"),
    "doctor.camera_ok_rate": ("{source}：{n} 帧 {w}x{h}，每秒 {fps} 帧", "{source}: {n} frames {w}x{h}, {fps} frames/s"),
    "doctor.fix_camera": ("检查摄像头排线和 `libcamera-hello`；[devices.camera] source",
                          "check the camera ribbon cable and `libcamera-hello`; [devices.camera] source"),
    # the broker
    "doctor.broker_off": ('未配置区平台（[mqtt] url = ""）：记录留在本机存储中',
                          'no broker configured ([mqtt] url = ""): records wait in the store'),
    "doctor.broker_slow": ("{where}：{seconds} 秒内登录无应答", "{where}: no answer to the login within {seconds} s"),
    "doctor.broker_closed": ("{where}：登录时服务器断开了连接（{reason}）：证书或账号未被接受",
                             "{where}: the broker closed the connection during the login ({reason}): certificate "
                             "or credentials not accepted"),
    "doctor.broker_refused": ("{where}：登录被拒绝（{reason}）", "{where}: login refused ({reason})"),
    "doctor.broker_ok": ("{where}：可连接，登录成功", "{where}: reachable, login accepted"),
    "doctor.broker_ok_tls": ("{where}：可连接，TLS 已验证，登录成功", "{where}: reachable, TLS verified, login accepted"),
    "doctor.fix_broker": ("检查 [mqtt] url、网络和防火墙；证书（ca_file、cert_file、key_file）和 password_file",
                          "check [mqtt] url, network and firewall; certificates (ca_file, cert_file, key_file) "
                          "and password_file"),
    # beside a running kiosk: its own connection, read from its store (no login of doctor's own)
    "doctor.kiosk_connected": ("采样程序正在运行：它自己的连接 {where} 自 {since} 起在线；{waiting} 条等待上传"
                               "（doctor 未登录：那会挤掉采样程序的连接）",
                               "kiosk running: its own connection to {where} is up since {since}; {waiting} waiting "
                               "for the broker (doctor did not log in: that would drop the kiosk's connection)"),
    "doctor.kiosk_disconnected": ("采样程序正在运行：它自己的连接 {where} 中断（最近一次尝试 {since}）：{error}；"
                                  "{waiting} 条等待上传（doctor 未登录）",
                                  "kiosk running: its own connection to {where} is down (last try {since}): {error}; "
                                  "{waiting} waiting for the broker (doctor did not log in)"),
    "doctor.kiosk_not_reported": ("采样程序正在运行（存储被占用）：它的上传程序尚未报告连接状态（刚启动？）；doctor 未登录",
                                  "kiosk running (its store is in use): its uplink has not reported a broker state "
                                  "yet (just started?); doctor did not log in"),
    "doctor.kiosk_unread": ("采样程序正在运行：无法读取它的连接状态（{reason}）；doctor 未登录",
                            "kiosk running: its broker state cannot be read ({reason}); doctor did not log in"),
    "doctor.kiosk_unknown": ("无法判断采样程序是否在运行（{where}：{reason}），因此 doctor 未登录",
                             "cannot tell whether the kiosk is running ({where}: {reason}), so doctor did not log in"),
    "doctor.kiosk_stopped": ("采样程序未运行：测试登录：{verdict}", "kiosk stopped: test login: {verdict}"),
    "doctor.fix_rerun": ("几秒后再运行 swabkiosk doctor；或查看 swabkiosk status",
                         "run swabkiosk doctor again in a few seconds, or see swabkiosk status"),
    "doctor.fix_as_root": ("以 root 运行：sudo swabkiosk doctor", "run it as root: sudo swabkiosk doctor"),
    "doctor.fix_login": ("与区平台核对 [mqtt] username 和 password_file（或客户端证书）",
                         "check [mqtt] username and password_file (or the client certificate) with the district"),
    # disk and store
    "doctor.disk_free": ("{where} 剩余 {mb} MB", "{mb} MB free on {where}"),
    "doctor.disk_low": ("{where} 仅剩 {mb} MB", "only {mb} MB free on {where}"),
    "doctor.fix_mounted": ("数据分区是否已挂载？", "is the data partition mounted?"),
    "doctor.fix_disk_full": ("腾出空间：导出并归档旧日期（swabkiosk export），或换更大的存储卡",
                             "free space: export and archive old days (swabkiosk export), or a bigger card"),
    "doctor.fix_disk_low": ("准备更大的存储卡", "plan a bigger card"),
    "doctor.store_empty": ("{where} 还没有记录（首次启动时创建）", "no records yet in {where} (created at the first start)"),
    "doctor.store_counts": ("已写入 {written} 条记录，{waiting} 条等待上传",
                            "{written} records written, {waiting} waiting for the broker"),
    "doctor.store_lost": ("{what}：保留 {kept} 条，丢失 {lost} 条（{moved}）", "{what}: {kept} kept, {lost} lost ({moved})"),
    "doctor.store_oldest": ("（最早 {hours} 小时）", "(oldest {hours} h)"),
    "doctor.store_damage": ("损坏：{damage}", "damage: {damage}"),
    "doctor.fix_store_not_ready": ("稍候再运行 doctor；采样程序未运行时先启动它（swabkiosk run 会建立数据库）",
                                   "run doctor again in a moment; if the kiosk is not running, start it (swabkiosk run makes the store)"),
    "doctor.volunteers_ok": ("持证志愿者名单 {path}：{n} 人{pushed}", "certified volunteer list {path}: {n} people{pushed}"),
    "doctor.volunteers_pushed": ("（另有区里推送的名单，以其为准）", " (a list pushed by the district is also there and is used)"),
    "doctor.volunteers_none": ("持证志愿者名单 {path} 不存在或为空：没有人能签到",
                               "certified volunteer list {path} is missing or empty: nobody can sign in"),
    "doctor.volunteers_bad": ("持证志愿者名单 {path} 不能用：{reason}；没有人能签到",
                              "certified volunteer list {path} is unusable: {reason}; nobody can sign in"),
    "doctor.fix_volunteers": ("把区里签发的持证志愿者名单放到 [volunteers] list_file（或由区平台推送）",
                              "put the district's certified volunteer list at [volunteers] list_file (or have the district push it)"),
    "doctor.fix_repair": ("swabkiosk status --repair（损坏的文件会被移到一旁，绝不删除）",
                          "swabkiosk status --repair (damaged files are set aside, never deleted)"),
    # the clock
    "doctor.clock_unknown": ("未知：未找到时间服务（timedatectl、timesyncd、chrony）；记录标为 clock_synced=false",
                             "unknown: no time service found (timedatectl, timesyncd, chrony); records are marked "
                             "clock_synced=false"),
    "doctor.clock_unsynced": ("未同步（{how}）；记录标为 clock_synced=false",
                              "not synchronised ({how}); records are marked clock_synced=false"),
    "doctor.clock_ok": ("已同步（{how}）", "synchronised ({how})"),
    "doctor.fix_ntp_enable": ("启用 systemd-timesyncd 或 chrony，并配置可访问的 NTP 服务器",
                              "enable systemd-timesyncd or chrony with a reachable NTP server"),
    "doctor.fix_ntp_check": ("检查网络和 NTP 服务器（timedatectl timesync-status）",
                             "check the network and the NTP server (timedatectl timesync-status)"),
    # the station file
    "doctor.config_bad": ("{path}：{n} 个问题：{first}", "{path}: {n} problem(s): {first}"),
    "doctor.config_more": ("（另有 {n} 个）", "(+{n} more)"),
    "doctor.config_ok": ("{path}：有效", "{path}: valid"),
    "doctor.config_ok_pushed": ("{path}：有效；采样程序使用区平台推送的文件 {used}（有效）",
                                "{path}: valid; the kiosk runs the district's pushed file {used} (valid)"),
    "doctor.fix_config": ("运行 swabkiosk config check {path}", "swabkiosk config check {path}"),
    "doctor.config_invalid": ("站点配置文件无效", "station file invalid"),
}
