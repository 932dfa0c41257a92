"""`swabkiosk run` and the command line: the refusal screen, pushed files, the dispatcher's words."""

MESSAGES: dict[str, tuple[str, str]] = {
    # a station file with problems: the screen while the kiosk refuses to start
    "daemon.config_refused": ("配置文件有误（{count}处），请联系技术人员",
                              "Station file has {count} problem(s); call the technician"),
    # cmd/push_config and cmd/push_volunteers (the screen's flash; the response goes to the district)
    "daemon.config_push_refused": ("远程配置被拒绝，仍用原配置", "pushed station file refused; the old one stays"),
    "daemon.volunteers_push_refused": ("志愿者名单被拒绝，仍用原名单", "pushed volunteer list refused; the old one stays"),
    "daemon.config_push_not_saved": ("远程配置未能保存，仍用原配置", "pushed station file not saved; the old one stays"),
    "daemon.config_push_applied": ("已收到新配置，正在重启", "new station file received; restarting"),
    "daemon.push_locked": ("不能远程更改", "cannot be changed remotely (provision them on the boot partition)"),
    "daemon.push_no_station_file": ("本机不是从配置文件启动的", "this kiosk was not started from a station file"),
    "daemon.push_body_not_text": ("签名内容必须是配置文件的文本", "the signed body must be the station file's text"),
    "daemon.push_plain_mqtt": ("只接受经 mqtts:// 的远程推送；本机与服务器的连接未加密",
                               "pushes are accepted over mqtts:// only; this kiosk's broker link is not TLS"),
    "daemon.push_saved": ("已保存，重启后生效", "saved; the kiosk restarts to apply it"),
    "daemon.push_not_saved": ("未能保存：{reason}", "not saved: {reason}"),
    # systemd's STATUS= line while the refusal screen is up (systemctl status)
    "daemon.config_refused_status": ("配置错误：{path} 中有 {count} 处问题", "config error: {count} problem(s) in {path}"),
    # `swabkiosk run` on a terminal (a technician reads it)
    "cli.run_refused": ("swabkiosk run：{path}：{count} 处问题，未启动。请修正后重启（检查：swabkiosk config check {path}）",
                        "swabkiosk run: {path}: {count} problem(s); not starting. Fix them and restart "
                        "(check with: swabkiosk config check {path})"),
    "cli.run_needs_config": ("swabkiosk run：需要 --config FILE（或 --simulate）",
                             "swabkiosk run: --config FILE is required (or --simulate)"),
    "cli.run_description": ("运行采样终端守护程序。", "Run the kiosk daemon."),
    # the dispatcher (firmware_app/cli.py)
    "cli.usage": ("用法：swabkiosk 命令 [参数...]", "usage: swabkiosk COMMAND [ARGS...]"),
    "cli.commands": ("命令：", "commands:"),
    "cli.more_help": ("运行 `swabkiosk 命令 --help` 查看该命令的选项。", "Run `swabkiosk COMMAND --help` for a command's options."),
    "cli.unknown_command": ("swabkiosk：未知命令 {name}", "swabkiosk: unknown command {name}"),
    "cli.not_built": ("swabkiosk {name}：尚未实现", "swabkiosk {name}: not built yet"),
    "cli.help.run": ("运行采样终端守护程序（由 systemd 启动）", "run the kiosk daemon (systemd starts this)"),
    "cli.help.simulate": ("在模拟设备上无界面地运行一整场采样", "a whole table session headless on simulated devices"),
    "cli.help.doctor": ("技术人员自检：设备、服务器、磁盘、时钟、配置",
                        "self-test for technicians: devices, broker, disk, clock, config"),
    "cli.help.probe": ("在一台设备上做一次真实读取或打印（idcard、scanner、printer、camera）",
                       "one real read/print on one device (idcard, scanner, printer, camera)"),
    "cli.help.status": ("待上传数量、最后确认、服务器状态", "backlog, last acknowledgement, broker state"),
    "cli.help.tube": ("某管中有哪些人（已脱敏）", "who was in a tube (masked)"),
    "cli.help.export": ("导出某天、某管或某箱：CSV、Excel（--xlsx）或纸质登记表（--register，A4 PDF）",
                        "a day, tube or box as CSV, Excel (--xlsx) or the paper register (--register, A4 PDF)"),
    "cli.help.config": ("config check FILE：检查配置文件", "config check FILE: validate a station file"),
    "cli.help.provision": ("从启动分区安装配置文件（首次启动）", "install the station file from the boot partition (first boot)"),
    "cli.help.qr": ("qr issue / qr keygen：生成用于测试和培训的签名码", "qr issue / qr keygen: mint signed codes for tests and training"),
    "cli.help.district_sign": ("为 cmd/push_* 签署配置文件或志愿者名单（区级密钥）",
                               "sign a station file or volunteer list for cmd/push_* (district key)"),
    "cli.help.district": ("区级接收程序：run / status / tube（记录恰好一次，缺失的重发）",
                          "district receiver: run / status / tube (records exactly once, gaps resent)"),
}
