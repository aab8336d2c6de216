"""Unrecognised questions are grouped by topic, Chinese included."""

from __future__ import annotations

from meiqia.bot.cluster import cluster_questions
from meiqia.bot.cluster import representative


def test_chinese_and_english_questions_group_by_topic():
    questions = [
        "能不能开发票", "怎么开发票", "發票怎麼開",  # 0-2: invoice (one traditional)
        "你们有实体店吗", "实体店在哪里",  # 3-4: shops
        "how do I track my parcel", "track my parcel please",  # 5-6
        "帮我写一首诗",  # 7: alone
    ]
    groups = cluster_questions(questions)
    as_sets = [set(g) for g in groups]
    assert {0, 1, 2} in as_sets
    assert {3, 4} in as_sets
    assert {5, 6} in as_sets
    assert {7} in as_sets
    assert sorted(i for g in groups for i in g) == list(range(len(questions)))
    assert len(groups[0]) == 3  # largest first


def test_edge_cases():
    assert cluster_questions([]) == []
    assert cluster_questions(["退款"]) == [[0]]
    assert sorted(map(sorted, cluster_questions(["？？", "!!", "退款"]))) in (
        [[0], [1], [2]], [[0, 1], [2]])


def test_representative_is_a_member():
    questions = ["怎么开发票", "能开发票吗", "开发票", "发票怎么开"]
    assert representative(questions, [0, 1, 2, 3]) in {0, 1, 2, 3}
