"""Small knowledge bases written for the tests, so they do not depend on the demo KBs."""

from __future__ import annotations

from meiqia.bot.kbfile import KBEntry

ZH = [
    KBEntry("return-how", ["怎么退货", "退货流程是什么", "我想退货怎么操作", "如何申请退货",
                           "商品不想要了能退吗"], "在订单详情点“申请售后”，选择退货。", "售后"),
    KBEntry("return-fee", ["退货运费谁出", "退货要自己付运费吗", "退回去的邮费谁承担",
                           "退货包邮吗"], "质量问题由我们承担运费，七天无理由退货由买家承担。", "售后"),
    KBEntry("refund-time", ["退款多久到账", "钱什么时候退回来", "退款几天能到",
                            "申请退款后多久收到钱"], "仓库收货后 1-3 个工作日原路退回。", "售后"),
    KBEntry("ship-when", ["什么时候发货", "下单后多久发货", "今天下单今天发吗",
                          "几天能发出"], "下午四点前付款当天发货。", "物流"),
    KBEntry("ship-track", ["怎么查物流", "快递到哪了", "物流信息在哪看", "查询快递单号"],
            "在订单详情可以看到物流信息。", "物流"),
    KBEntry("invoice", ["怎么开发票", "能开发票吗", "发票怎么申请", "可以开增值税专用发票吗"],
            "在结算页勾选开发票，专票请联系客服。", "发票"),
    KBEntry("password", ["忘记密码怎么办", "密码找回", "登录密码忘了", "怎么重置密码"],
            "在登录页点“忘记密码”，用手机验证码重置。", "账户"),
    KBEntry("vip", ["会员有什么特权", "VIP有什么好处", "会员等级怎么升级", "怎么成为会员"],
            "消费满 500 元自动升级为 VIP，享受包邮和生日礼。", "会员"),
    KBEntry("pay", ["支持哪些付款方式", "可以用支付宝吗", "能微信支付吗", "可以货到付款吗"],
            "支持支付宝、微信支付和银行卡，暂不支持货到付款。", "支付"),
]

EN = [
    KBEntry("refund-time", ["How long does a refund take?", "When will I get my money back",
                            "refund processing time", "how many days until my refund arrives"],
            "Refunds reach your account 1-3 business days after we receive the item."),
    KBEntry("return-how", ["How do I return an item?", "return policy",
                           "I want to send something back", "how can I return my order"],
            "Open the order and choose 'Return'."),
    KBEntry("pay-methods", ["What payment methods do you accept?", "can I pay with paypal",
                            "do you take credit cards", "payment options"],
            "We accept cards, PayPal and Alipay."),
    KBEntry("password", ["I forgot my password", "reset my password", "how do I change my password",
                         "cannot log in, lost password"], "Use 'Forgot password' on the login page."),
    KBEntry("ship-time", ["When will my order ship?", "how long does shipping take",
                          "delivery time", "when does my package arrive"],
            "Orders ship within one business day."),
]
