"""First-boot provisioning (firmware_app/provision*.py): what the technician reads in the
journal, on the errors page and on the kiosk screen. A problem's message is shown as
"zh / en" in one line (firmware_app.provision_layout.problem_text)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "provision.validator_failed": ("配置校验失败：{error}", "the config validator failed: {error}"),
    "provision.not_absolute": ("须为绝对路径：{value}", "must be an absolute path: {value}"),
    "provision.secret_outside": ("密钥文件须放在 {etc}/ 下", "secret files must live in {etc}/"),
    "provision.file_not_found": ("文件不存在：{value}", "file not found: {value}"),
    "provision.no_volunteer_list": ("{key}：尚无 {name}，区里推送名单前志愿者无法签到",
                                    "{key}: no {name} yet: volunteers cannot sign in until the district pushes the list"),
    "provision.missing_file": ("缺少文件：请把 {name} 放在启动分区的 {folder}/ 文件夹中",
                               "missing file: put {name} in the {folder}/ folder on the boot partition"),
    "provision.symlink": ("不接受符号链接：{name}", "symbolic links are refused: {name}"),
    "provision.too_large": ("文件过大（上限 {kb} KB）：{name}", "file larger than {kb} KB: {name}"),
    "provision.not_network": ("mqtt.allow_networks：不是网段：{entry}", "mqtt.allow_networks: not a network (CIDR): {entry}"),
    "provision.host_names": ("mqtt.allow_networks：{names} 是主机名，请列出其地址及 DNS 服务器所在网段",
                             "mqtt.allow_networks: {names} is a host name: list the networks its addresses and the "
                             'DNS server are in (e.g. allow_networks = ["10.20.0.0/16"]), or give the broker by IP address'),
    "provision.not_utf8": ("文件不是 UTF-8 编码：{error}", "file is not UTF-8: {error}"),
    "provision.toml_syntax": ("TOML 语法错误：{error}", "TOML syntax error: {error}"),
    "provision.cannot_write": ("无法写入 {path}：{error}", "cannot write {path}: {error}"),
    "provision.read_only_root": ("只读根文件系统（overlay）：配置只在本次启动有效，站点文件保留在启动分区",
                                 "read-only root (overlay): configuration lives in RAM until reboot; the station "
                                 "file stays on the boot partition"),
    "provision.not_removed": ("无法从启动分区删除站点文件（含密钥），请手动删除：{error}",
                              "could not remove the station file (and its secrets) from the boot partition, "
                              "delete it by hand: {error}"),
    # the report's headline
    "provision.installed_with_warnings": ("站点文件已安装，但有需要处理的问题（见下）。",
                                          "Station file installed, with something to take care of (below)."),
    "provision.not_installed_kept": ("启动分区上的站点文件有 {count} 处错误，未安装；仍使用原有配置。请修改后重新启动。",
                                     "The station file on the boot partition has {count} problem(s) and was not "
                                     "installed; the previous configuration stays in use. Fix it and reboot."),
    "provision.not_installed_none": ("启动分区上的站点文件有 {count} 处错误，未安装；本机尚无可用配置，采样台无法工作。请修改后重新启动。",
                                     "The station file on the boot partition has {count} problem(s) and was not "
                                     "installed; this kiosk has no working configuration. Fix it and reboot."),
    # the standalone errors page the browser shows while the daemon cannot run
    "provision.page_title": ("站点配置", "station configuration"),
    "provision.page_key": ("设置", "key"),
    "provision.page_line": ("行", "line"),
    "provision.page_problem": ("问题", "problem"),
    # the journal (stderr)
    "provision.journal_line": ("swabkiosk provision：{where}：{message}", "swabkiosk provision: {where}: {message}"),
    "provision.journal_where": ("{key} 第 {line} 行", "{key} line {line}"),
    "provision.journal_file": ("（文件）", "(file)"),
    "provision.journal_warning": ("swabkiosk provision：警告：{warning}", "swabkiosk provision: warning: {warning}"),
    "provision.journal_summary": ("swabkiosk provision：{message}", "swabkiosk provision: {message}"),
    "provision.description": ("首次启动：安装技术人员放在 SD 卡启动分区上的站点文件。",
                              "First boot: install the station file a technician put on the SD card's boot partition."),
    # `swabkiosk provision --help`
    "provision.arg.boot": ("启动分区（默认 %(default)s）", "boot partition (default %(default)s)"),
    "provision.arg.etc": ("配置目录（默认 %(default)s）", "config directory (default %(default)s)"),
    "provision.arg.run": ("错误文件所在的运行时目录", "runtime directory for the errors file"),
    "provision.arg.screen": ("浏览器显示的页面所在目录", "directory of the page the browser shows"),
    "provision.arg.dropin_dir": ("swabkiosk.service.d 目录", "swabkiosk.service.d directory"),
    "provision.arg.user": ("拥有密钥文件的服务用户", "service user owning the secrets"),
    "provision.arg.uid": ("服务 uid（代替 --user）", "service uid (instead of --user)"),
    "provision.arg.gid": ("服务 gid（代替 --user）", "service gid (instead of --user)"),
    "provision.arg.no_reload": ("不运行 systemctl daemon-reload", "do not run systemctl daemon-reload"),
}
