"""A simulated hospital EMR export shaped like the MIMIC-IV demo's ``hosp`` module: 22 CSV.GZ tables.

It exists so that schema inference, the CLI path and the EMR benchmark can be tried on the shape of a real
hospital export without one (none may be downloaded here): ``patients`` keyed by ``subject_id``,
``admissions`` keyed by ``hadm_id``, event tables carrying both ids (``hadm_id`` missing on outpatient
labs, microbiology and ED transfers, as in MIMIC), composite keys (``diagnoses_icd(hadm_id, seq_num)``,
``poe_detail(poe_id, field_name)``), string ids (``poe_id`` = ``<subject_id>-<n>``), dictionaries
(``d_labitems``, ``d_icd_diagnoses``, ``d_icd_procedures``, ``d_hcpcs``), a ``provider`` table, and
clinical vocabulary columns whose names contain "name" (``test_name``, ``org_name``, ``ab_name``,
``result_name``, ``field_name``). Column names, order and value formats follow MIMIC-IV 2.2
(https://mimic.mit.edu/docs/iv/modules/hosp/); the values are simulated, nothing is copied from it.

    python -m synth.demo_hospital OUT_DIR [--patients 100] [--seed 0]
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TABLES = (
    "patients", "admissions", "transfers", "services", "diagnoses_icd", "procedures_icd", "hcpcsevents",
    "drgcodes", "labevents", "microbiologyevents", "prescriptions", "pharmacy", "poe", "poe_detail", "emar",
    "emar_detail", "omr", "provider", "d_hcpcs", "d_icd_diagnoses", "d_icd_procedures", "d_labitems",
)

# (itemid, label, fluid, category, unit, mean, sd, low, high)
LAB_ITEMS = (
    (50912, "Creatinine", "Blood", "Chemistry", "mg/dL", 1.1, 0.5, 0.5, 1.2),
    (50971, "Potassium", "Blood", "Chemistry", "mEq/L", 4.2, 0.5, 3.3, 5.1),
    (50983, "Sodium", "Blood", "Chemistry", "mEq/L", 139.0, 4.0, 133.0, 145.0),
    (50902, "Chloride", "Blood", "Chemistry", "mEq/L", 102.0, 5.0, 96.0, 108.0),
    (51006, "Urea Nitrogen", "Blood", "Chemistry", "mg/dL", 20.0, 10.0, 6.0, 20.0),
    (50931, "Glucose", "Blood", "Chemistry", "mg/dL", 120.0, 35.0, 70.0, 100.0),
    (51222, "Hemoglobin", "Blood", "Hematology", "g/dL", 11.5, 2.0, 13.7, 17.5),
    (51301, "White Blood Cells", "Blood", "Hematology", "K/uL", 8.5, 3.5, 4.0, 11.0),
    (51265, "Platelet Count", "Blood", "Hematology", "K/uL", 230.0, 80.0, 150.0, 440.0),
    (51237, "INR(PT)", "Blood", "Hematology", "", 1.2, 0.3, 0.9, 1.1),
    (50813, "Lactate", "Blood", "Blood Gas", "mmol/L", 1.8, 0.9, 0.5, 2.0),
    (51491, "pH", "Urine", "Hematology", "units", 6.0, 0.7, 5.0, 8.0),
)
DIAGNOSES = (  # (icd_code, icd_version, long_title)
    ("4019", 9, "Unspecified essential hypertension"), ("E785", 10, "Hyperlipidemia, unspecified"),
    ("I10", 10, "Essential (primary) hypertension"), ("Z87891", 10, "Personal history of nicotine dependence"),
    ("K219", 10, "Gastro-esophageal reflux disease without esophagitis"), ("F329", 10, "Major depressive disorder, single episode, unspecified"),
    ("I2510", 10, "Atherosclerotic heart disease of native coronary artery without angina pectoris"),
    ("N179", 10, "Acute kidney failure, unspecified"), ("E119", 10, "Type 2 diabetes mellitus without complications"),
    ("J449", 10, "Chronic obstructive pulmonary disease, unspecified"), ("42731", 9, "Atrial fibrillation"),
    ("5849", 9, "Acute kidney failure, unspecified"), ("25000", 9, "Diabetes mellitus without mention of complication"),
    ("E871", 10, "Hypo-osmolality and hyponatremia"), ("D62", 10, "Acute posthemorrhagic anemia"),
    ("A419", 10, "Sepsis, unspecified organism"), ("J189", 10, "Pneumonia, unspecified organism"),
    ("N390", 10, "Urinary tract infection, site not specified"), ("I5032", 10, "Chronic diastolic (congestive) heart failure"),
    ("Z7901", 10, "Long term (current) use of anticoagulants"),
)
PROCEDURES = (
    ("3893", 9, "Venous catheterization, not elsewhere classified"), ("0BH17EZ", 10, "Insertion of endotracheal airway into trachea"),
    ("5A1955Z", 10, "Respiratory ventilation, greater than 96 consecutive hours"), ("3E0G76Z", 10, "Introduction of nutritional substance into upper GI"),
    ("02HV33Z", 10, "Insertion of infusion device into superior vena cava"), ("9904", 9, "Transfusion of packed cells"),
    ("0DJ08ZZ", 10, "Inspection of upper intestinal tract"), ("B548ZZA", 10, "Ultrasonography of superior vena cava"),
)
HCPCS = (("99232", "Evaluation and Management", "Subsequent hospital care"), ("99233", "Evaluation and Management", "Subsequent hospital care"),
         ("99223", "Evaluation and Management", "Initial hospital care"), ("G0378", "Hospital outpatient", "Hospital observation per hr"),
         ("99291", "Critical care", "Critical care first hour"))
DRUGS = (  # (drug, route, unit, dose, formulary code, ndc)
    ("Heparin", "SC", "UNIT", "5000", "HEPA5I", "63323026201"), ("Acetaminophen", "PO/NG", "mg", "650", "ACET325", "00904198861"),
    ("Sodium Chloride 0.9%  Flush", "IV", "mL", "3", "NACLFLUSH", "00000000000"), ("Insulin", "SC", "UNIT", "0", "INSULIN", "00002751001"),
    ("Metoprolol Tartrate", "PO", "mg", "25", "METO25", "51079025520"), ("Furosemide", "IV", "mg", "40", "FURO40I", "00409610202"),
    ("Pantoprazole", "PO", "mg", "40", "PANT40", "00008084181"), ("Docusate Sodium", "PO", "mg", "100", "DOCU100", "00904224461"),
    ("Senna", "PO", "TAB", "1", "SENN187", "00904516561"), ("Potassium Chloride", "PO", "mEq", "20", "KCL20P", "00245004101"),
)
MICRO = (  # (spec_itemid, spec_type_desc, test_itemid, test_name)
    (70012, "BLOOD CULTURE", 90201, "Blood Culture, Routine"), (70079, "URINE", 90039, "URINE CULTURE"),
    (70070, "SWAB", 90101, "MRSA SCREEN"), (70064, "SPUTUM", 90115, "RESPIRATORY CULTURE"),
    (70093, "STOOL", 90267, "C. difficile PCR"),
)
ORGANISMS = ((80002, "ESCHERICHIA COLI"), (80023, "STAPH AUREUS COAG +"), (80053, "ENTEROCOCCUS SP."),
             (80026, "PSEUDOMONAS AERUGINOSA"), (80004, "KLEBSIELLA PNEUMONIAE"))
ANTIBIOTICS = ((90015, "VANCOMYCIN"), (90025, "CEFTRIAXONE"), (90012, "GENTAMICIN"), (90016, "OXACILLIN"),
               (90004, "AMPICILLIN"), (90006, "CIPROFLOXACIN"))
CAREUNITS = ("Emergency Department", "Medicine", "Medical Intensive Care Unit (MICU)", "Surgery",
             "Cardiac Vascular Intensive Care Unit (CVICU)", "Transplant", "Neurology", "Med/Surg")
SERVICES = ("MED", "SURG", "CMED", "NMED", "TRAUM", "CSURG", "ORTHO")
POE_FIELDS = (("Admit to", ("Medicine", "Surgery", "Neurology")), ("Code status", ("Full code", "DNR / DNI", "DNAR/Comfort Care")),
              ("Level of Urgency", ("Routine", "Urgent", "STAT")), ("Discharge Planning", ("Finalized", "Pending")),
              ("Tubes & Drains type", ("Foley", "JP", "Chest tube")))
OMR_RESULTS = ("Blood Pressure", "Weight (Lbs)", "BMI (kg/m2)", "Height (Inches)", "eGFR")
ORDER_TYPES = ("Medications", "Lab", "General Care", "Nutrition", "ADT orders", "Radiology", "IV therapy", "Consults")


@dataclass(frozen=True)
class Sizes:
    """Mean rows per parent of each event table (MIMIC-IV demo: about 2.7 admissions per patient)."""

    admissions: float = 2.7
    diagnoses: float = 12.0
    procedures: float = 2.0
    labs: float = 40.0
    micro: float = 3.0
    orders: float = 18.0
    outpatient_labs: float = 10.0


def _fmt(minutes: np.ndarray) -> list[str]:
    """Minutes since 2100-01-01 as MIMIC's ``YYYY-MM-DD HH:MM:SS`` text."""
    stamps = np.datetime64("2100-01-01T00:00") + np.asarray(minutes, np.int64).astype("timedelta64[m]")
    return [s.replace("T", " ") for s in np.datetime_as_string(stamps, unit="s").tolist()]


def _date(minutes: np.ndarray) -> list[str]:
    return [s[:10] for s in _fmt(minutes)]


def _poisson_at_least(rng: np.random.Generator, mean: float, n: int, low: int = 0) -> np.ndarray:
    return np.maximum(rng.poisson(mean, n), low)


def _provider_ids(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ"))
    return sorted({"P" + "".join(rng.choice(letters, 2)) + f"{rng.integers(100, 999)}" for _ in range(n)})


def simulate_hospital(n_patients: int = 100, *, seed: int = 0, sizes: Sizes = Sizes()) -> dict[str, pd.DataFrame]:
    """The 22 tables of a simulated MIMIC-IV-demo-shaped ``hosp`` export, as data frames of text and numbers."""
    if isinstance(n_patients, bool) or not isinstance(n_patients, int) or n_patients < 1:
        raise ValueError(f"The 'n_patients' parameter of simulate_hospital must be an int >= 1; got {n_patients!r} instead.")
    rng = np.random.default_rng(seed)
    providers = _provider_ids(rng, max(20, n_patients // 2))
    subject = 10_000_000 + np.sort(rng.choice(90_000, n_patients, replace=False)) * 32
    gender = rng.choice(["F", "M"], n_patients)
    age = rng.integers(18, 91, n_patients)
    anchor_year = rng.integers(2110, 2190, n_patients)
    group = rng.choice(["2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019"], n_patients)
    start = (anchor_year - 2100) * 525_600 + rng.integers(0, 300 * 1440, n_patients)

    # admissions: a chain per patient, each stay 1-15 days, 5-200 days apart
    n_adm = _poisson_at_least(rng, sizes.admissions - 1, n_patients) + 1
    adm_pat = np.repeat(np.arange(n_patients), n_adm)
    n_a = len(adm_pat)
    los = (rng.gamma(2.0, 2.5, n_a) * 1440 + 300).astype(np.int64)
    gap = (rng.gamma(1.5, 60, n_a) * 1440).astype(np.int64)
    admit = np.empty(n_a, np.int64)
    i = 0
    for p, k in enumerate(n_adm):
        t = start[p]
        for _ in range(k):
            admit[i] = t
            t = t + los[i] + gap[i]
            i += 1
    disch = admit + los
    died = np.zeros(n_a, bool)
    last = np.cumsum(n_adm) - 1
    died[last[rng.random(n_patients) < 0.12]] = True
    hadm = 20_000_000 + rng.choice(9_000_000, n_a, replace=False)
    dod = np.full(n_patients, None, object)
    dod[adm_pat[died]] = _date(disch[died])
    ed = rng.random(n_a) < 0.55
    tables: dict[str, pd.DataFrame] = {}
    tables["patients"] = pd.DataFrame({
        "subject_id": subject, "gender": gender, "anchor_age": age, "anchor_year": anchor_year,
        "anchor_year_group": group, "dod": dod,
    })
    adm_type = np.where(ed, rng.choice(["EW EMER.", "URGENT", "DIRECT EMER."], n_a), rng.choice(["ELECTIVE", "SURGICAL SAME DAY ADMISSION", "OBSERVATION ADMIT"], n_a))
    tables["admissions"] = pd.DataFrame({
        "subject_id": subject[adm_pat], "hadm_id": hadm, "admittime": _fmt(admit), "dischtime": _fmt(disch),
        "deathtime": np.where(died, np.array(_fmt(disch), object), None), "admission_type": adm_type,
        "admit_provider_id": rng.choice(providers, n_a),
        "admission_location": np.where(ed, "EMERGENCY ROOM", rng.choice(["PHYSICIAN REFERRAL", "TRANSFER FROM HOSPITAL", "CLINIC REFERRAL"], n_a)),
        "discharge_location": np.where(died, "DIED", rng.choice(["HOME", "HOME HEALTH CARE", "SKILLED NURSING FACILITY", "REHAB"], n_a)),
        "insurance": rng.choice(["Medicare", "Medicaid", "Other"], n_a, p=[0.5, 0.15, 0.35]),
        "language": rng.choice(["ENGLISH", "?"], n_a, p=[0.9, 0.1]),
        "marital_status": rng.choice(np.array(["MARRIED", "SINGLE", "WIDOWED", "DIVORCED", None], object), n_a),
        "race": rng.choice(["WHITE", "BLACK/AFRICAN AMERICAN", "HISPANIC/LATINO - PUERTO RICAN", "ASIAN", "UNKNOWN"], n_a),
        "edregtime": np.where(ed, np.array(_fmt(admit - 300), object), None),
        "edouttime": np.where(ed, np.array(_fmt(admit + 30), object), None),
        "hospital_expire_flag": died.astype(int),
    })

    # transfers: ED (no hadm_id when not admitted), then 1-3 units per admission, then discharge
    rows = []
    tid = 30_000_000
    for a in range(n_a):
        s = subject[adm_pat[a]]
        t = admit[a]
        if ed[a]:
            rows.append((s, hadm[a], tid, "ED", "Emergency Department", admit[a] - 300, admit[a])); tid += 1
        k = int(rng.integers(1, 4))
        cuts = np.sort(rng.integers(admit[a] + 1, disch[a], k - 1)) if k > 1 else np.array([], np.int64)
        bounds = [admit[a], *cuts.tolist(), disch[a]]
        for j in range(k):
            rows.append((s, hadm[a], tid, "admit" if j == 0 else "transfer", str(rng.choice(CAREUNITS[1:])), bounds[j], bounds[j + 1])); tid += 1
        rows.append((s, hadm[a], tid, "discharge", None, disch[a], None)); tid += 1
    for p in np.flatnonzero(rng.random(n_patients) < 0.3):  # ED visits never admitted: no hadm_id
        t = start[p] - int(rng.integers(10, 400)) * 1440
        rows.append((subject[p], None, tid, "ED", "Emergency Department", t, t + 240)); tid += 1
    tr = pd.DataFrame(rows, columns=["subject_id", "hadm_id", "transfer_id", "eventtype", "careunit", "intime", "outtime"])
    tr["hadm_id"] = tr["hadm_id"].astype("Int64")
    tr["intime"] = _fmt(tr["intime"].to_numpy(np.int64))
    tr["outtime"] = [None if pd.isna(v) else _fmt(np.array([int(v)]))[0] for v in tr["outtime"]]
    tables["transfers"] = tr

    svc = []
    for a in range(n_a):
        prev = None
        for _ in range(int(rng.integers(1, 3))):
            cur = str(rng.choice(SERVICES))
            svc.append((subject[adm_pat[a]], hadm[a], _fmt(np.array([admit[a] + int(rng.integers(0, 600))]))[0], prev, cur))
            prev = cur
    tables["services"] = pd.DataFrame(svc, columns=["subject_id", "hadm_id", "transfertime", "prev_service", "curr_service"])

    # per-admission code tables with a sequence number (composite keys hadm_id + seq_num)
    def per_admission(mean: float, low: int) -> tuple[np.ndarray, np.ndarray]:
        k = _poisson_at_least(rng, mean, n_a, low)
        owner = np.repeat(np.arange(n_a), k)
        seq = np.concatenate([np.arange(1, j + 1) for j in k]) if len(owner) else np.array([], int)
        return owner, seq

    own, seq = per_admission(sizes.diagnoses, 1)
    dx = rng.integers(0, len(DIAGNOSES), len(own))
    tables["diagnoses_icd"] = pd.DataFrame({
        "subject_id": subject[adm_pat[own]], "hadm_id": hadm[own], "seq_num": seq,
        "icd_code": [DIAGNOSES[d][0] for d in dx], "icd_version": [DIAGNOSES[d][1] for d in dx],
    })
    own, seq = per_admission(sizes.procedures, 0)
    px = rng.integers(0, len(PROCEDURES), len(own))
    tables["procedures_icd"] = pd.DataFrame({
        "subject_id": subject[adm_pat[own]], "hadm_id": hadm[own], "seq_num": seq,
        "chartdate": _date(admit[own] + (los[own] * rng.random(len(own))).astype(np.int64)),
        "icd_code": [PROCEDURES[d][0] for d in px], "icd_version": [PROCEDURES[d][1] for d in px],
    })
    own, seq = per_admission(1.0, 0)
    hx = rng.integers(0, len(HCPCS), len(own))
    tables["hcpcsevents"] = pd.DataFrame({
        "subject_id": subject[adm_pat[own]], "hadm_id": hadm[own], "chartdate": _date(admit[own]),
        "hcpcs_cd": [HCPCS[h][0] for h in hx], "seq_num": seq, "short_description": [HCPCS[h][2] for h in hx],
    })
    drg_own = np.repeat(np.arange(n_a), 2)
    tables["drgcodes"] = pd.DataFrame({
        "subject_id": subject[adm_pat[drg_own]], "hadm_id": hadm[drg_own], "drg_type": np.tile(["HCFA", "APR"], n_a),
        "drg_code": rng.choice(["871", "291", "190", "470", "683", "392"], len(drg_own)),
        "description": rng.choice(["SEPTICEMIA OR SEVERE SEPSIS W/O MV >96 HOURS W MCC", "HEART FAILURE & SHOCK W MCC",
                                   "MAJOR JOINT REPLACEMENT", "RENAL FAILURE W CC"], len(drg_own)),
        "drg_severity": np.where(np.tile([False, True], n_a), rng.integers(1, 5, len(drg_own)), -1),
        "drg_mortality": np.where(np.tile([False, True], n_a), rng.integers(1, 5, len(drg_own)), -1),
    })
    tables["drgcodes"] = tables["drgcodes"].astype({"drg_severity": "Int64", "drg_mortality": "Int64"})
    tables["drgcodes"].loc[tables["drgcodes"]["drg_type"] == "HCFA", ["drg_severity", "drg_mortality"]] = pd.NA

    # labs: in-hospital (with hadm_id) and outpatient (hadm_id missing), 1-6 items per specimen
    lab_rows = []
    spec_id = 1_000_000
    for owner_kind, count in (("in", _poisson_at_least(rng, sizes.labs / 4, n_a, 1)),
                              ("out", _poisson_at_least(rng, sizes.outpatient_labs / 4, n_patients, 0))):
        for idx, k in enumerate(count):
            for _ in range(int(k)):
                if owner_kind == "in":
                    p, h = adm_pat[idx], hadm[idx]
                    t = admit[idx] + int(rng.integers(0, los[idx]))
                else:
                    p, h = idx, None
                    t = start[idx] - int(rng.integers(1, 700)) * 1440
                spec_id += int(rng.integers(1, 50))
                prov = str(rng.choice(providers)) if rng.random() < 0.7 else None
                for item in rng.choice(len(LAB_ITEMS), int(rng.integers(1, 7)), replace=False):
                    lab_rows.append((p, h, spec_id, item, prov, t))
    labs = pd.DataFrame(lab_rows, columns=["p", "hadm_id", "specimen_id", "item", "order_provider_id", "t"])
    item = labs["item"].to_numpy()
    mean = np.array([x[5] for x in LAB_ITEMS])[item]
    sd = np.array([x[6] for x in LAB_ITEMS])[item]
    valuenum = np.round(rng.normal(mean, sd), 1)
    lo, hi = np.array([x[7] for x in LAB_ITEMS])[item], np.array([x[8] for x in LAB_ITEMS])[item]
    t = labs["t"].to_numpy(np.int64)
    tables["labevents"] = pd.DataFrame({
        "labevent_id": np.arange(1, len(labs) + 1), "subject_id": subject[labs["p"].to_numpy()],
        "hadm_id": labs["hadm_id"].astype("Int64"), "specimen_id": labs["specimen_id"],
        "itemid": [LAB_ITEMS[j][0] for j in item], "order_provider_id": labs["order_provider_id"],
        "charttime": _fmt(t), "storetime": _fmt(t + rng.integers(20, 300, len(t))),
        "value": [f"{v:g}" for v in valuenum], "valuenum": valuenum,
        "valueuom": [LAB_ITEMS[j][4] or None for j in item], "ref_range_lower": lo, "ref_range_upper": hi,
        "flag": np.where((valuenum < lo) | (valuenum > hi), "abnormal", None),
        "priority": rng.choice(np.array(["ROUTINE", "STAT", None], object), len(t), p=[0.6, 0.3, 0.1]),
        "comments": rng.choice(np.array([None, "___", "HEMOLYSIS FALSELY ELEVATES K"], object), len(t), p=[0.85, 0.1, 0.05]),
    })

    # microbiology: specimens in or outside admissions; an organism sometimes, antibiotics per organism
    micro = []
    mid = 1
    for a in range(n_a):
        for _ in range(int(rng.poisson(sizes.micro))):
            outside = rng.random() < 0.25
            p = adm_pat[a]
            t0 = admit[a] + int(rng.integers(0, los[a])) if not outside else start[p] - int(rng.integers(1, 500)) * 1440
            spec = MICRO[int(rng.integers(0, len(MICRO)))]
            org = ORGANISMS[int(rng.integers(0, len(ORGANISMS)))] if rng.random() < 0.35 else None
            abx = [ANTIBIOTICS[j] for j in rng.choice(len(ANTIBIOTICS), int(rng.integers(1, 4)), replace=False)] if org else [None]
            sid = int(rng.integers(1_000_000, 9_999_999))
            for ab in abx:
                micro.append((mid, subject[p], None if outside else hadm[a], sid, str(rng.choice(providers)) if rng.random() < 0.5 else None,
                              _date(np.array([t0]))[0] + " 00:00:00", _fmt(np.array([t0]))[0], spec[0], spec[1], 1,
                              _date(np.array([t0 + 2880]))[0] + " 00:00:00", _fmt(np.array([t0 + 2900]))[0], spec[2], spec[3],
                              org[0] if org else None, org[1] if org else None, 1 if org else None, "MODERATE GROWTH" if org else None,
                              ab[0] if ab else None, ab[1] if ab else None, "<=1" if ab else None, "<=" if ab else None,
                              1.0 if ab else None, str(rng.choice(["S", "R", "I"])) if ab else None, None))
                mid += 1
    micro_cols = ["microevent_id", "subject_id", "hadm_id", "micro_specimen_id", "order_provider_id", "chartdate", "charttime",
                  "spec_itemid", "spec_type_desc", "test_seq", "storedate", "storetime", "test_itemid", "test_name", "org_itemid",
                  "org_name", "isolate_num", "quantity", "ab_itemid", "ab_name", "dilution_text", "dilution_comparison",
                  "dilution_value", "interpretation", "comments"]
    mdf = pd.DataFrame(micro, columns=micro_cols)
    tables["microbiologyevents"] = mdf.astype({c: "Int64" for c in ("hadm_id", "org_itemid", "isolate_num", "ab_itemid")})

    # provider orders (poe) with details; medication orders go to pharmacy, prescriptions and emar
    poe, poe_detail, pharmacy, rx, emar, emar_detail = [], [], [], [], [], []
    poe_n = {int(s): 0 for s in subject}
    emar_n = {int(s): 0 for s in subject}
    pharmacy_id = 1_000
    for a in range(n_a):
        s = int(subject[adm_pat[a]])
        first_poe = None
        for _ in range(int(_poisson_at_least(rng, sizes.orders, 1, 1)[0])):
            poe_n[s] += 1
            pid = f"{s}-{poe_n[s]}"
            t0 = admit[a] + int(rng.integers(0, los[a]))
            otype = str(rng.choice(ORDER_TYPES))
            disc = first_poe if first_poe and rng.random() < 0.1 else None
            poe.append((pid, poe_n[s], s, hadm[a], _fmt(np.array([t0]))[0], otype, None, "New", disc, None,
                        str(rng.choice(providers)), str(rng.choice(["Inactive", "Active"]))))
            first_poe = first_poe or pid
            if otype in ("General Care", "ADT orders") and rng.random() < 0.6:
                for f in rng.choice(len(POE_FIELDS), int(rng.integers(1, 3)), replace=False):
                    name, values = POE_FIELDS[int(f)]
                    poe_detail.append((pid, poe_n[s], s, name, str(rng.choice(values))))
            if otype == "Medications":
                d = DRUGS[int(rng.integers(0, len(DRUGS)))]
                pharmacy_id += int(rng.integers(1, 30))
                stop = t0 + int(rng.integers(600, 5000))
                pharmacy.append((s, hadm[a], pharmacy_id, pid, _fmt(np.array([t0]))[0], _fmt(np.array([stop]))[0], d[0],
                                 "Unit Dose", "Discontinued", _fmt(np.array([t0 - 10]))[0], _fmt(np.array([t0 + 20]))[0], d[1],
                                 str(rng.choice(["Q6H", "DAILY", "BID", "TID"])), None, None, None, None, None, None, None,
                                 None, None, None, None, None, "Omnicell", None))
                rx.append((s, hadm[a], pharmacy_id, pid, poe_n[s], str(rng.choice(providers)), _fmt(np.array([t0]))[0],
                           _fmt(np.array([stop]))[0], "MAIN", d[0], d[4], None, d[5], f"{d[3]}{d[2]}", "TAB", d[3], d[2],
                           "1", d[2], 1.0, d[1]))
                for k in range(int(rng.integers(0, 4))):
                    emar_n[s] += 1
                    eid = f"{s}-{emar_n[s]}"
                    te = t0 + 60 + 360 * k
                    emar.append((s, hadm[a], eid, emar_n[s], pid, pharmacy_id, str(rng.choice(providers)), _fmt(np.array([te]))[0],
                                 d[0], str(rng.choice(["Administered", "Not Given", "Flushed"])), _fmt(np.array([te - 30]))[0],
                                 _fmt(np.array([te + 5]))[0]))
                    emar_detail.append((s, eid, emar_n[s], None, str(rng.choice(["Medication Administration", "IV Bolus"])),
                                        pharmacy_id, "Patient", None, None, d[3], d[2], d[3], d[2], None, d[3], d[2],
                                        d[4], d[0], None, d[1]))
    tables["poe"] = pd.DataFrame(poe, columns=["poe_id", "poe_seq", "subject_id", "hadm_id", "ordertime", "order_type", "order_subtype",
                                               "transaction_type", "discontinue_of_poe_id", "discontinued_by_poe_id",
                                               "order_provider_id", "order_status"])
    tables["poe_detail"] = pd.DataFrame(poe_detail, columns=["poe_id", "poe_seq", "subject_id", "field_name", "field_value"]) \
        .drop_duplicates(["poe_id", "field_name"])
    tables["prescriptions"] = pd.DataFrame(rx, columns=[
        "subject_id", "hadm_id", "pharmacy_id", "poe_id", "poe_seq", "order_provider_id", "starttime", "stoptime", "drug_type",
        "drug", "formulary_drug_cd", "gsn", "ndc", "prod_strength", "form_rx", "dose_val_rx", "dose_unit_rx", "form_val_disp",
        "form_unit_disp", "doses_per_24_hrs", "route"])
    tables["pharmacy"] = pd.DataFrame(pharmacy, columns=[
        "subject_id", "hadm_id", "pharmacy_id", "poe_id", "starttime", "stoptime", "medication", "proc_type", "status",
        "entertime", "verifiedtime", "route", "frequency", "disp_sched", "infusion_type", "sliding_scale", "lockout_interval",
        "basal_rate", "one_hr_max", "doses_per_24_hrs", "duration", "duration_interval", "expiration_value", "expiration_unit",
        "expirationdate", "dispensation", "fill_quantity"])
    tables["emar"] = pd.DataFrame(emar, columns=["subject_id", "hadm_id", "emar_id", "emar_seq", "poe_id", "pharmacy_id",
                                                 "enter_provider_id", "charttime", "medication", "event_txt", "scheduletime",
                                                 "storetime"])
    tables["emar_detail"] = pd.DataFrame(emar_detail, columns=[
        "subject_id", "emar_id", "emar_seq", "parent_field_ordinal", "administration_type", "pharmacy_id", "barcode_type",
        "reason_for_no_barcode", "complete_dose_not_given", "dose_due", "dose_due_unit", "dose_given", "dose_given_unit",
        "will_remainder_of_dose_be_given", "product_amount_given", "product_unit", "product_code", "product_description",
        "product_description_other", "route"])

    omr = []
    for p in range(n_patients):
        for k in range(int(rng.poisson(3))):
            day = _date(np.array([start[p] + k * 30 * 1440]))[0]
            for j, name in enumerate(rng.choice(OMR_RESULTS, int(rng.integers(1, 4)), replace=False)):
                value = {"Blood Pressure": f"{rng.integers(100, 160)}/{rng.integers(60, 95)}", "Weight (Lbs)": f"{rng.normal(175, 30):.1f}",
                         "BMI (kg/m2)": f"{rng.normal(28, 5):.1f}", "Height (Inches)": f"{rng.normal(67, 4):.0f}",
                         "eGFR": f"{rng.integers(20, 120)}"}[str(name)]
                omr.append((subject[p], day, j + 1, str(name), value))
    tables["omr"] = pd.DataFrame(omr, columns=["subject_id", "chartdate", "seq_num", "result_name", "result_value"]) \
        .drop_duplicates(["subject_id", "chartdate", "seq_num"])
    tables["provider"] = pd.DataFrame({"provider_id": providers})
    tables["d_hcpcs"] = pd.DataFrame([(c, cat, long, short) for c, cat, short in HCPCS for long in [short.upper()]],
                                     columns=["code", "category", "long_description", "short_description"])
    tables["d_icd_diagnoses"] = pd.DataFrame(list(DIAGNOSES), columns=["icd_code", "icd_version", "long_title"])
    tables["d_icd_procedures"] = pd.DataFrame(list(PROCEDURES), columns=["icd_code", "icd_version", "long_title"])
    tables["d_labitems"] = pd.DataFrame([(x[0], x[1], x[2], x[3]) for x in LAB_ITEMS], columns=["itemid", "label", "fluid", "category"])
    return {name: tables[name] for name in TABLES}


def write_hospital(folder: str | Path, n_patients: int = 100, *, seed: int = 0, sizes: Sizes = Sizes()) -> Path:
    """Write the simulated export as ``<table>.csv.gz`` files (empty cell = missing, as MIMIC's CSVs)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in simulate_hospital(n_patients, seed=seed, sizes=sizes).items():
        frame.to_csv(out / f"{name}.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write_hospital(args.folder, args.patients, seed=args.seed)
    print(f"wrote {len(TABLES)} tables for {args.patients} patients to {path}")


if __name__ == "__main__":
    main()
