"""Shopper phrasings of unanswered questions, grouped by what they ask (written by hand, like real chat).

``TUNING`` is what :data:`kefu.report.grouping.THRESHOLD` was chosen on; ``HELD_OUT`` was written separately
and never used to choose anything: the tests assert the grouping's quality on it.
"""

from __future__ import annotations

TUNING: dict[str, list[str]] = {
    "return": ["怎么退货", "如何退货", "我想退货怎么弄", "退货流程是什么", "退货要怎么操作"],
    "invoice": ["能开发票吗", "可以开增值税发票吗", "发票怎么开", "开发票要提供什么"],
    "ship_time": ["什么时候发货", "多久能发货", "下单后几天发货", "今天下单今天能发货吗"],
    "coupon": ["有没有优惠券", "怎么领优惠券", "优惠券在哪里领"],
    "store": ["你们店在哪里", "实体店地址在哪", "线下门店在哪里"],
    "pet": ["可以带宠物进店吗", "店里能带狗吗"],
    "size": ["这件衣服偏大还是偏小", "尺码偏大吗", "衣服尺码准不准"],
    "gift_wrap": ["可以礼品包装吗", "能帮忙包装成礼物吗", "有没有礼盒包装"],
    # near misses: share words with the groups above, ask something else
    "return_fee": ["退货运费谁出", "退货的运费谁承担", "退货邮费谁付"],
    "ship_fee": ["运费多少钱", "邮费怎么算", "包邮吗"],
    "invoice_title": ["发票抬头写错了怎么改", "发票抬头能改吗"],
}

HELD_OUT: dict[str, list[str]] = {
    "warranty": ["保修多久", "保修期是多长时间", "坏了能保修吗", "这个保修几年"],
    "pay_later": ["可以分期付款吗", "支持分期吗", "能不能分期付款"],
    "overseas": ["能寄到国外吗", "支持海外发货吗", "可以寄到美国吗"],
    "member": ["怎么成为会员", "会员怎么注册", "会员有什么好处"],
    "washing": ["这个能机洗吗", "可以用洗衣机洗吗", "怎么清洗"],
    # near misses
    "pay_method": ["支持微信支付吗", "能用支付宝付款吗", "可以用信用卡支付吗"],
    "overseas_fee": ["寄到国外运费多少", "海外运费怎么算"],
}
