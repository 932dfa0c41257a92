"""What the printed labels say (``firmware_app/labels.py``): each line as printed (zh-CN
first, the English word beside it where the lab or the courier needs it) and in English
alone. The printer prints the zh-CN side in GB18030; lines fit 58 mm paper (32 columns, a
Chinese character counting two)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "label.pool.single": ("单管 {reason} single", "single tube ({reason})"),
    "label.pool.one": ("单采单检 single", "one person per tube"),
    "label.pool.household": ("一户一管 household", "one household per tube"),
    "label.pool.n": ("{capacity}混1 pool of {capacity}", "pool of {capacity}"),
    "label.reprint": ("补打 / reprint", "reprint"),
    "label.table": ("采样台 {table} {at}", "table {table} {at}"),
    "label.box_count": ("{tubes}管 {people}人 / tubes, people", "{tubes} tubes, {people} people"),
    "label.manifest": ("转运清单 manifest", "manifest"),
    "label.manifest_reprint": ("转运清单 manifest 补打 reprint", "manifest (reprint)"),
    "label.manifest_box": ("箱 box {box_id}", "box {box_id}"),
    "label.sampler": ("采样人 sampler {sampler}", "sampler {sampler}"),
    "label.manifest_tube": ("{n:>2}. {tube_id} {pool} {people}人", "{n:>2}. {tube_id} {pool} {people} people"),
    "label.manifest_voided": ("    另作废 {voided} 人 voided", "    {voided} more voided"),
    "label.manifest_total": ("共 {tubes} 管 {people} 人 / total", "total {tubes} tubes, {people} people"),
    "label.courier": ("转运人 courier: {courier}", "courier: {courier}"),
    "label.receiver": ("接收人 receiver: __________", "receiver: __________"),
    "label.recall": ("召回单 recall", "recall slip"),
    "label.recall_old": ("原管 {tube_id}", "old tube {tube_id}"),
    "label.recall_new": ("新管 {tube_id}", "new tube {tube_id}"),
    "label.recall_total": ("共 {people} 人须重新采样", "{people} people to swab again"),
    "label.probe": ("打印测试 test label", "test label"),
    "label.probe_charset": ("中文 GB18030 / ASCII ok", "Chinese GB18030 / ASCII ok"),
    "label.probe_target": ("目标 target {target}", "target {target}"),
    "label.probe_time": ("时间 {at}", "time {at}"),
}
