import csv

import pytest
from covplan.china.names import (
    canonical_level,
    clean_name,
    disambiguated_names,
    match_names,
    split_name,
)
from covplan.errors import CoverageError
from shipped import NBS_TABLES as DATA


@pytest.mark.parametrize(
    ("name", "level", "stem", "kind"),
    [
        ("新山村街道办事处", "township", "新山村", "街道"),
        ("新山村街道", "township", "新山村", "街道"),
        ("新山村", "township", "新山村", None),  # 村 is not a township suffix
        ("跳磴镇", "township", "跳磴", "镇"),
        ("三溪乡", "township", "三溪", "乡"),
        ("平安社区居民委员会", "village", "平安", "社区"),
        ("平安社区居委会", "village", "平安", "社区"),
        ("平安社区", "village", "平安", "社区"),
        ("金桥村民委员会", "village", "金桥", "村"),
        ("金桥村委会", "village", "金桥", "村"),
        ("金桥村", "village", "金桥", "村"),
        ("镇", "township", "镇", None),  # never strips to nothing
    ],
)
def test_split_name(name, level, stem, kind):
    key = split_name(name, level=level)
    assert (key.stem, key.kind) == (stem, kind)


def test_clean_name_full_width_and_spaces():
    assert clean_name(" 跳磴　镇 ") == "跳磴镇"
    assert clean_name("ＡＢ１２") == "AB12"
    assert clean_name(None) == "" and clean_name(float("nan")) == ""


def test_level_spellings():
    assert canonical_level("乡镇") == "township"
    assert canonical_level("town") == "township"
    assert canonical_level("村居") == "village"
    with pytest.raises(CoverageError, match="unknown administrative level"):
        canonical_level("county")


def test_colliding_stems_keep_level_word():
    names = ["河口村民委员会", "河口社区居委会", "平安村"]
    assert disambiguated_names(names, level="village") == ["河口村", "河口社区", "平安"]
    got = match_names(["河口村", "河口社区", "河口", "平安村委会"], names, level="village")
    assert [(m.index, m.how) for m in got] == [
        (0, "stem+kind"),
        (1, "stem+kind"),
        (None, "ambiguous"),
        (2, "stem"),
    ]
    assert got[2].candidates == (0, 1)


def test_typo_reported_with_suggestion():
    (m,) = match_names(["九宫妙街道"], ["九宫庙街道", "跃进村街道"], level="township")
    assert m.index is None and m.how == "none"
    assert m.suggestions[0] == "九宫庙街道"


def _rows(name):
    with open(DATA / name, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_nbs2016_and_2023_village_names_match_by_stem():
    """Villages whose code is unchanged 2016 -> 2023 mostly changed only the suffix.

    Counted independently: the 2016 name with 居委会/村委会 spelled out equals the 2023 name.
    """
    old = {
        r["code"]: r["name"] for r in _rows("admin_units_nbs2016.csv") if r["level"] == "village"
    }
    new = {r["code"]: r["name"] for r in _rows("villages_nbs2023.csv")}
    both = sorted(set(old) & set(new))
    assert len(both) == 1586

    def spelled_out(n):
        for short, full in (("居委会", "居民委员会"), ("村委会", "村民委员会")):
            if n.endswith(short):
                return n[: -len(short)] + full
        return n

    only_suffix = [c for c in both if spelled_out(old[c]) == new[c]]
    matched = [
        c for c in both if match_names([old[c]], [new[c]], level="village")[0].index == 0
    ]
    # every pair that differs only by the suffix spelling matches ...
    assert set(only_suffix) <= set(matched)
    # ... and so do the 村村民委员会 / 村委会 pairs such as 梨树湾村村民委员会 / 梨树湾村委会
    assert old["500106014201"] == "梨树湾村委会" and new["500106014201"] == "梨树湾村村民委员会"
    assert "500106014201" in matched
    # a real renaming is not matched: 金碧正街居委会 became 金碧社区居民委员会
    assert "500106004001" not in matched
    assert len(matched) > len(only_suffix)
