"""Texts more than one area shows: device names, health-code colours, yes/no."""

MESSAGES: dict[str, tuple[str, str]] = {
    "device.idcard": ("身份证读卡器", "ID-card reader"),
    "device.scanner": ("扫码枪", "scanner"),
    "device.camera": ("摄像头", "camera"),
    "device.printer": ("打印机", "printer"),
    "device.broker": ("区平台", "district platform"),
    "device.store": ("存储", "store"),
}
