"""Draw the images the demo knowledge bases show in their answers.

The demo answers use ``![alt](/static/demo/<name>.png)``; this script makes those
files (small PNGs, about 480 px wide) in ``meiqia/web/static/demo/`` by rendering
a little HTML card per image in Chromium, so they carry real Chinese and English
text in the same fonts as the browser tests (fonts-wqy-zenhei). Their facts are
the demo KB's (knowledge_base/README.md): change both together.

Run: ``.venv/bin/python knowledge_base/demo_images.py`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "meiqia" / "web" / "static" / "demo"
CHROMIUM = os.environ.get("MEIQIA_TEST_CHROMIUM", "/usr/bin/chromium")

STYLE = """
body { margin: 0; font: 15px/1.45 "WenQuanYi Zen Hei", "DejaVu Sans", sans-serif; color: #1f2328; }
.card { width: 460px; padding: 14px 16px; background: #f6f8fa; border: 1px solid #d0d7de;
        border-radius: 10px; }
h1 { font-size: 17px; margin: 0 0 10px; color: #1f6feb; }
ol { margin: 0; padding: 0; list-style: none; counter-reset: step; }
li { counter-increment: step; display: flex; gap: 10px; align-items: baseline; margin: 6px 0; }
li::before { content: counter(step); flex: none; width: 22px; height: 22px; border-radius: 50%;
             background: #1f6feb; color: #fff; font-size: 13px; text-align: center;
             line-height: 22px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border: 1px solid #d0d7de; padding: 4px 6px; text-align: center; font-size: 14px; }
th { background: #eaf1fb; }
.note { margin: 8px 0 0; font-size: 12px; color: #6e7781; }
"""


def steps(title: str, items: list[str], note: str) -> str:
    rows = "".join(f"<li>{item}</li>" for item in items)
    return f"<h1>{title}</h1><ol>{rows}</ol><p class=note>{note}</p>"


def table(title: str, head: list[str], rows: list[list[str]], note: str) -> str:
    header = "".join(f"<th>{cell}</th>" for cell in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<h1>{title}</h1><table><tr>{header}</tr>{body}</table><p class=note>{note}</p>"


IMAGES = {
    "return-steps": steps("退货流程", [
        "我的订单 → 找到商品，点“申请售后”",
        "选择“退货退款”和原因，提交申请",
        "审核通过后按页面上的地址寄回，填写快递单号",
        "仓库收货后 1-3 个工作日原路退款",
    ], "7 天无理由退货，从签收次日算起。"),
    "invoice-entry": steps("申请发票入口", [
        "下单时：结算页勾选“开具发票”",
        "已下单：订单详情 → “申请发票”",
        "确认收货后 1-3 个工作日开出，发到您的邮箱",
    ], "默认开具电子普通发票，也可在订单详情下载。"),
    "member-levels": table("会员等级权益", ["等级", "近 12 个月实付", "权益"], [
        ["普通", "—", "基础积分"],
        ["银卡", "满 ¥1000", "积分加倍"],
        ["金卡", "满 ¥5000", "积分加倍 · 免费顺丰"],
        ["黑金", "满 ¥20000", "专属客服 · 极速退款"],
    ], "等级越高，积分倍率越高。"),
    "size-chart": table("尺码表示例（上衣）", ["尺码", "身高 cm", "体重 kg", "胸围 cm"], [
        ["S", "155-165", "45-55", "84-88"],
        ["M", "165-172", "55-65", "88-94"],
        ["L", "172-178", "65-75", "94-100"],
        ["XL", "178-185", "75-85", "100-106"],
    ], "以商品页的尺码表为准；尺码不合适 7 天内可换。"),
    "return-steps-en": steps("Returns in four steps", [
        "My account &gt; Orders: choose the item, click Return",
        "Pick a reason and submit",
        "Print the return label we email you and drop the parcel off",
        "Enter the tracking number; refund 1-3 working days after we receive it",
    ], "Returns within 30 days of delivery."),
    "invoice-entry-en": steps("Where your invoice is", [
        "Issued automatically when the order ships",
        "Emailed to you as a PDF",
        "Or: My account &gt; Orders &gt; Invoice",
    ], "You can download it again at any time."),
    "size-chart-en": table("Size chart example (tops)", ["Size", "US", "UK", "EU", "Chest in"], [
        ["S", "4-6", "8-10", "36-38", "33-35"],
        ["M", "8-10", "12-14", "40-42", "35-37"],
        ["L", "12-14", "16-18", "44-46", "37-39"],
        ["XL", "16-18", "20-22", "48-50", "39-42"],
    ], "Each product page has its own chart in cm and inches."),
}


def main() -> None:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        sys.exit(f"{CHROMIUM} not found (apt-get install chromium fonts-wqy-zenhei)")
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 520, "height": 400}, device_scale_factor=1)
        for name, body in IMAGES.items():
            page.set_content(f"<style>{STYLE}</style><div class=card>{body}</div>")
            page.locator(".card").screenshot(path=str(OUT / f"{name}.png"))
            print(OUT / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    main()
