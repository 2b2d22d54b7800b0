"""Synthetic members, providers and clinical documents for the demo (every name and number made up;
NPIs carry a valid check digit but belong to nobody we know of)."""

from __future__ import annotations

from datetime import timedelta

from medpolicy.parties import Member, Parties, Provider, npi_with_check_digit

__all__ = ["DEMO_AGES", "demo_parties", "demo_pathology_report"]

_MEMBERS = (
    ("M-100201", "Jane Doe", "1961-04-12"),
    ("M-100202", "Robert Lane", "1957-09-30"),
    ("M-100203", "Maria Alvarez", "1970-01-05"),
    ("M-100204", "Samuel Okafor", "1949-11-21"),
    ("M-100205", "Linda Park", "1966-06-17"),
    ("M-100206", "Thomas Reed", "1953-02-08"),
    ("M-100207", "Grace Kim", "1975-12-29"),
    ("M-100208", "Henry Walsh", "1960-08-14"),
)
_SURGEONS = (
    ("Alicia Moreno, MD", "199999001"),
    ("Brian Chu, MD", "199999002"),
    ("Carla Jensen, DO", "199999003"),
)
_ORGS = (
    ("Riverside Cancer Center", "199999101", "43-1000001"),
    ("Prairie Radiation Oncology", "199999102", "43-1000002"),
)

#: how long ago some demo requests were received, by their index in the demo plan: the queue then
#: shows amber ("due soon") and red ("overdue") clocks
DEMO_AGES: dict[int, timedelta] = {
    1: timedelta(days=6, hours=14),  # standard: due in about 10 hours (amber)
    3: timedelta(hours=76),  # expedited: overdue (red)
    5: timedelta(days=7, hours=5),  # standard: overdue (red)
    6: timedelta(hours=62),  # expedited: due in about 10 hours (amber)
}


def demo_parties(index: int) -> Parties:
    member_id, name, born = _MEMBERS[index % len(_MEMBERS)]
    surgeon, npi9 = _SURGEONS[index % len(_SURGEONS)]
    org, org9, tin = _ORGS[index % len(_ORGS)]
    rad_org, rad9, rad_tin = _ORGS[(index + 1) % len(_ORGS)]
    return Parties(
        Member(member_id, name, born, "Heartland Demo PPO", "Group 4410 (Example Manufacturing)"),
        Provider(surgeon, npi_with_check_digit(npi9), org, npi_with_check_digit(org9), tin),
        Provider(
            "Dana Whitfield, MD",
            npi_with_check_digit("199999004"),
            rad_org,
            npi_with_check_digit(rad9),
            rad_tin,
        ),
    )


def demo_pathology_report(name: str) -> bytes:
    return (
        "SURGICAL PATHOLOGY REPORT (synthetic demo document)\n"
        f"Patient: {name}\n\n"
        "Specimen: low anterior resection, rectum.\n"
        "Diagnosis: adenocarcinoma of the rectum, moderately differentiated.\n"
        "Tumor invades through the visceral peritoneum (pT4a).\n"
        "Margins: the radial (circumferential) margin is involved by carcinoma (positive margin, R1).\n"
        "Lymph nodes: 2 of 14 positive (pN1b).\n"
    ).encode()
