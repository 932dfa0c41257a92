"""Opening the store (firmware_app/store.py, store_files.py, store_meta.py): why it cannot be
opened or written, for the technician (`status`, `export`, the daemon's start-up) and the screen."""

MESSAGES: dict[str, tuple[str, str]] = {
    "store_open.not_found": ("没有找到数据目录：{path}", "No store found in {path}"),
    "store_open.not_made": ("数据库为空，尚未建立（启动采样程序 swabkiosk run 时建立，无需修复）：{path}",
                            "The store is empty and not made yet (swabkiosk run makes it; nothing to repair): {path}"),
    "store_open.being_created": ("数据库正在创建（采样程序刚启动），请稍后再试：{path}",
                                 "The store is being created (the kiosk has just started); try again in a moment: {path}"),
    "store_open.not_imported": ("数据尚未导入新格式（请先启动 swabkiosk run）：{path}",
                           "The store in {path} is not imported yet (start `swabkiosk run` once)"),
    "store_open.in_use": ("数据目录正被另一个进程使用：{path}（是否已在运行 swabkiosk run？）",
                     "The store {path} is in use by another process (is `swabkiosk run` already running?)"),
    "store_open.opened_read_only": ("数据以只读方式打开", "The store was opened read-only"),
    "store_open.state_damaged": ("数据库中的站点状态已损坏", "the station's state in the database is damaged"),
}
