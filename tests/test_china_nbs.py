import csv
from collections import Counter

import pandas as pd
import pytest
from covplan.china import nbs
from covplan.errors import CoverageError
from shipped import NBS_TABLES as DATA


def _rows(name):
    with open(DATA / name, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_lookup_county_by_code_name_and_pinyin():
    for query in (500104, "500104", "500104000000", "大渡口区", "大渡口", "Dadukou",
                  "dadukou district"):
        county = nbs.lookup_county(query)
        assert county.code == "500104" and county.name == "大渡口区"
    county = nbs.lookup_county("Dadukou")
    # 7th census figures for 大渡口区 (census2020_counties.csv)
    assert (county.population, county.urban_population, county.rural_population) == (
        421904, 412396, 9508)
    assert county.geofabrik_region == "asia/china/chongqing"
    assert nbs.lookup_county("平昌县").geofabrik_region == "asia/china/sichuan"
    assert len(nbs.list_counties()) == 9
    with pytest.raises(CoverageError, match="did you mean '大渡口区'"):
        nbs.lookup_county("大渡囗区")


def test_unit_counts_real_facts():
    u16 = nbs.load_units(year=2016, county="500104")
    u23 = nbs.load_units(year=2023, county="500104")
    assert (u16["level"] == "township").sum() == 8
    assert (u16["level"] == "village").sum() == 89
    assert (u23["level"] == "township").sum() == 8
    assert (u23["level"] == "village").sum() == 97
    # all nine counties: 279 townships and 3,471 villages in 2016, 223 / 2,682 in 2023
    assert len(nbs.load_units(year=2016, level="township")) == 279
    assert len(nbs.load_units(year=2016, level="village")) == 3471
    assert len(nbs.load_units(year=2023, level="township")) == 223
    assert len(nbs.load_units(year=2023, level="village")) == 2682


def test_ur_histogram_agrees_with_summary():
    """townships_nbs2016_summary.csv agrees with counts made here from admin_units_nbs2016.csv."""
    hist: dict[str, Counter] = {}
    for r in _rows("admin_units_nbs2016.csv"):
        if r["level"] == "village":
            hist.setdefault(r["code"][:9], Counter())[r["ur_code"]] += 1
    summary = _rows("townships_nbs2016_summary.csv")
    assert len(summary) == 279
    classes = nbs.township_urban_rural(year=2016)
    for row in summary:
        code = row["town_code9"]
        want = Counter({k: int(v) for k, v in (p.split(":") for p in row["ur_codes"].split(";"))})
        assert hist[code] == want, code
        assert int(row["n_villages"]) == sum(want.values()) == classes.at[code, "n_villages"]
        n_urban = sum(v for k, v in want.items() if k.startswith("1"))
        assert int(row["n_urban_ur1xx"]) == n_urban == classes.at[code, "n_urban"]
    # Dadukou: every village urban (111/112/121/122); 跳磴镇 is 3 x 111 and 14 x 112
    assert hist["500104103"] == Counter({"112": 14, "111": 3})
    assert (classes.loc[classes.index.str.startswith("500104"), "urban_rural"] == "urban").all()


def test_urban_rural_from_ur_code():
    assert [nbs.urban_rural_from_ur_code(c) for c in ("111", "123", "210", "220", "", None, "9")] \
        == ["urban", "urban", "rural", "rural", None, None, None]
    u = nbs.load_units(year=2016, level="village")
    assert (u["urban_rural"] == "urban").sum() == 241 + 121 + 259 + 221 + 46
    assert (u["urban_rural"] == "rural").sum() == 127 + 2456


def test_2023_villages_take_2016_ur_code_when_unchanged():
    u23 = nbs.load_units(year=2023, level="village").set_index("code")
    u16 = nbs.load_units(year=2016, level="village").set_index("code")
    # 平安: 平安社区居委会 (2016) -> 平安社区居民委员会 (2023), ur 111
    assert u23.at["500104001001", "ur_code"] == "111"
    assert u23.at["500104001001", "ur_year"] == 2016
    # renamed village (金碧正街居委会 -> 金碧社区居民委员会) gets no code
    assert pd.isna(u23.at["500106004001", "ur_code"])
    # a code absent from 2016 gets no class
    new_codes = sorted(set(u23.index) - set(u16.index))
    assert new_codes and u23.loc[new_codes, "urban_rural"].isna().all()


def test_join_township_census_with_name_variants():
    census = pd.DataFrame(
        {
            "乡镇": ["新山村街道办事处", "跳磴镇", "八桥", "九宫妙街道", "", "跃进村街道"],
            "区划代码": ["", "", "", "", "500104005", "500104004"],
            "常住人口": [30000, 50000, 60000, 40000, 45000, 35000],
        }
    )
    joined, report = nbs.join_by_code_or_name(census, level="township", county="大渡口区")
    assert list(joined["nbs_code"].fillna("-")) == [
        "500104001", "500104103", "500104101", "-", "500104005", "500104004"]
    assert list(joined["nbs_name"])[:3] == ["新山村街道", "跳磴镇", "八桥镇"]
    assert list(joined["match"].fillna("-")) == ["stem", "exact", "stem", "-", "code", "code"]
    assert report.n_rows == 6 and report.n_matched == 5
    assert report.matched_by == {"stem": 2, "exact": 1, "code": 2}
    # the typo is reported unmatched with the right suggestion
    assert list(report.unmatched["row"]) == [3]
    assert report.unmatched["suggestions"].iloc[0][0] == "九宫庙街道"
    # row 5 matched by code 500104004, but that code is 茄子溪街道: a conflict is reported
    assert list(report.conflicts["row"]) == [5]
    assert report.conflicts["nbs_name"].iloc[0] == "茄子溪街道"
    # NBS townships no row matched (跃进村街道's row went to 茄子溪街道 by its code)
    assert set(report.missing["name"]) == {"九宫庙街道", "建胜镇", "跃进村街道"}
    assert not report.complete
    # township class and village counts from the village table (跳磴镇: 20 villages in 2023,
    # 17 of them with a 2016 urban code; counted here from the csv)
    n23 = sum(r["streetCode"] == "500104103" for r in _rows("villages_nbs2023.csv"))
    assert joined["n_villages"].iloc[1] == n23 == 20
    assert joined["urban_rural"].iloc[1] == "urban"
    assert joined["ur_source"].iloc[1] == "nbs"
    text = report.summary()
    assert "九宫妙街道" in text and "closest: 九宫庙街道" in text


def test_join_village_table_2016_and_2023():
    villages = pd.DataFrame(
        {
            "村": ["平安社区", "钢花社区居委会", "平安", "新山村", "小南海"],
            "乡镇": ["新山村街道", "新山村街道办事处", "新山村", "新山村街道", "跳蹬镇"],
            "城乡": ["", "", "乡村", "", ""],
        }
    )
    for year, name0 in ((2023, "平安社区居民委员会"), (2016, "平安社区居委会")):
        joined, report = nbs.join_by_code_or_name(
            villages, level="village", county="500104", year=year, parent_column="乡镇",
            urban_rural_column="城乡",
        )
        assert joined["nbs_code"].iloc[0] == "500104001001"
        assert joined["nbs_name"].iloc[0] == name0
        assert joined["nbs_code"].iloc[1] == "500104001004"
        assert joined["ur_code"].iloc[0] == "111" and joined["urban_rural"].iloc[0] == "urban"
        # the user's own class wins over NBS
        assert joined["urban_rural"].iloc[2] == "rural" and joined["ur_source"].iloc[2] == "column"
        assert list(report.unmatched["row"]) == [3, 4]
        # 跳蹬镇 (wrong character) is not a township of Dadukou
        assert "not found in 大渡口区" in report.unmatched["reason"].iloc[1]
        assert "新山村街道" in report.unmatched["reason"].iloc[0]
        # two rows name the same village
        assert report.duplicates["rows"].iloc[0] == [0, 2]


def test_village_name_without_township_is_ambiguous():
    # 新华 stems exist in several townships of 永川区? count independently
    rows = [r for r in _rows("villages_nbs2023.csv") if r["areaCode"] == "500118"]
    stems = Counter(r["name"].removesuffix("村民委员会").removesuffix("居民委员会") for r in rows)
    repeated = sorted(s for s, c in stems.items() if c > 1)
    assert repeated, "expected a village name repeated between townships"
    table = pd.DataFrame({"name": [repeated[0]]})
    joined, report = nbs.join_by_code_or_name(table, level="village", county="永川区")
    assert joined["nbs_code"].isna().all()
    assert report.unmatched["reason"].iloc[0].startswith("ambiguous")
    assert "parent_column" in report.unmatched["reason"].iloc[0]


def test_join_needs_a_name_or_code_column():
    with pytest.raises(CoverageError, match="no code or name column"):
        nbs.join_by_code_or_name(pd.DataFrame({"x": [1]}), level="township", county="500104")
