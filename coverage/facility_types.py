"""The facility-type vocabulary, with Chinese and English labels and the OSM tags that map to it.

The labels are served by :mod:`covplan.labels` (:func:`covplan.labels.facility_type_label`,
:data:`covplan.labels.FACILITY_TYPE_LABELS`); this module holds the data.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Canonical facility types: key -> (Chinese label, English label).
FACILITY_TYPES: dict[str, tuple[str, str]] = {
    "village_clinic": ("村卫生室", "village clinic"),
    "community_health_station": ("社区卫生服务站", "community health service station"),
    "community_health_centre": ("社区卫生服务中心", "community health service centre"),
    "township_health_centre": ("乡镇卫生院", "township health centre"),
    "sub_centre": ("区域医疗卫生次中心", "regional medical sub-centre"),
    "community_hospital": ("社区医院", "community hospital"),
    "emergency_station": ("急救中心（站）", "emergency (120) station"),
    "hospital": ("医院", "hospital"),
    "hospital_grade_1": ("一级医院", "grade 1 hospital"),
    "hospital_grade_2": ("二级医院", "grade 2 hospital"),
    "hospital_grade_3": ("三级医院", "grade 3 hospital"),
    "mental_health_centre": ("精神卫生中心", "mental health centre"),
    "nursing_home": ("护理院", "nursing home"),
    "psychological_service_station": ("社会心理服务站", "social psychological service station"),
    "disability_rehab_care": ("残疾人康复或托养设施", "disability rehabilitation or care facility"),
    "childcare": ("托育机构", "childcare centre (children under 3)"),
    "clinic": ("诊所", "clinic"),
    "doctors": ("个体诊所", "doctor's practice"),
    "pharmacy": ("药店", "pharmacy"),
    "other": ("其他医疗卫生机构", "other health facility"),
}

#: Other names a facility table may give a type (besides its key and its two labels).
FACILITY_TYPE_ALIASES: dict[str, str] = {
    "急救站": "emergency_station",
    "急救中心": "emergency_station",
    "急救中心(站)": "emergency_station",
}

#: Types that are not medical institutions (SPB-01 「医疗卫生机构」 leaves them out).
NON_MEDICAL_TYPES: tuple[str, ...] = (
    "pharmacy", "psychological_service_station", "disability_rehab_care", "childcare",
)

#: Named groups used by standards: any medical institution (SPB-01) leaves out pharmacies and
#: the social-service types (:data:`NON_MEDICAL_TYPES`).
FACILITY_GROUPS: dict[str, tuple[str, ...]] = {
    "hospitals": ("hospital", "hospital_grade_1", "hospital_grade_2", "hospital_grade_3"),
    "serious_illness": ("hospital", "hospital_grade_2", "hospital_grade_3"),
    "emergency": ("emergency_station", "hospital", "hospital_grade_2", "hospital_grade_3"),
    "grassroots": (
        "village_clinic",
        "community_health_station",
        "community_health_centre",
        "township_health_centre",
        "sub_centre",
        "community_hospital",
    ),
    "medical_institutions": tuple(k for k in FACILITY_TYPES if k not in NON_MEDICAL_TYPES),
}


def facility_type_from_osm(tags: Mapping[str, str]) -> str | None:
    """Map OSM tags to a facility type, or None when the object is not a health facility.

    Parameters
    ----------
    tags
        The OSM tags of a node, way or relation.

    Returns
    -------
    str or None
        A key of :data:`FACILITY_TYPES`.
    """
    amenity = tags.get("amenity", "")
    healthcare = tags.get("healthcare", "")
    if tags.get("emergency") == "ambulance_station":
        return "emergency_station"
    if amenity == "hospital" or healthcare == "hospital":
        return "hospital"
    if amenity == "clinic" or healthcare in ("clinic", "centre"):
        return "clinic"
    if amenity == "doctors" or healthcare == "doctor":
        return "doctors"
    if amenity == "pharmacy" or healthcare == "pharmacy":
        return "pharmacy"
    if healthcare:
        return "other"
    return None


def expand_types(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Expand group names (see :data:`FACILITY_GROUPS`) into facility types, keeping order.

    Raises
    ------
    KeyError
        With the unknown name, if a name is neither a type nor a group.
    """
    out: list[str] = []
    for name in names:
        members = FACILITY_GROUPS.get(name, (name,) if name in FACILITY_TYPES else None)
        if members is None:
            raise KeyError(name)
        out.extend(m for m in members if m not in out)
    return tuple(out)
