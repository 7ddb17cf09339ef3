"""The simulated kr_claims population converted to an OMOP CDM v5.4-shaped dataset (schema ``omop_cdm``).

This gives synthmed an OMOP test set with realistic structure (eight tables, a self-reference, an
optional one-row-per-person table, concept ids) without shipping any real data::

    from synth.demo_population import simulate
    from synth.omop_from_claims import claims_to_omop

    omop = claims_to_omop(simulate(1_000, seed=0))   # {"person": pyarrow.Table, ...}

How each OMOP table is made (one OMOP row per source row, so row counts can be checked):

========================  ===================================================================
person                    patients: gender 8507 / 8532, year of birth, race and ethnicity 0;
                          month, day and datetime of birth from the resident registration
                          number when it is present and agrees with ``birth_year``
observation_period        patients' eligibility (one period per patient)
visit_occurrence          claims: 9201 inpatient, 9202 outpatient, 9203 emergency, 581458
                          pharmacy; an admission ends ``length_of_stay - 1`` days after it
                          starts (the simulator counts the day of admission); the preceding
                          visit is the person's previous claim
condition_occurrence      diagnoses (status 32902 primary / 32908 secondary)
drug_exposure             prescriptions: days_supply, quantity = daily dose x days
procedure_occurrence      claim_details lines of category ``procedure`` and ``imaging``
measurement               claim_details lines of category ``lab``, with a made-up but plausible
                          result per test (seeded; raised for patients with a matching diagnosis)
death                     patients.death_date
========================  ===================================================================

Ids are integers 1..n in source row order. Source codes (KCD, ATC, fee-schedule codes) stay in the
``*_source_value`` columns; concept ids are deterministic *pseudo* concept ids in OMOP's range for
local concepts (above 2,000,000,000), one band per vocabulary (see ``pseudo_concept_id``): they are
stable across runs and machines but are not OHDSI vocabulary concepts. Type concepts follow the v5.4
Type Concept vocabulary (32810 claim, 32813 claim enrolment record, 32869 pharmacy claim).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_schemas.io import load_schema
from data_schemas.model import Column

__all__ = ["SOURCE_TABLES", "claims_to_omop", "pseudo_concept_id"]

SCHEMA_NAME = "omop_cdm"
SOURCE_TABLES = ("patients", "claims", "claim_details", "diagnoses", "prescriptions")

MALE, FEMALE = 8507, 8532
VISIT_CONCEPTS = {"inpatient": 9201, "outpatient": 9202, "emergency": 9203, "pharmacy": 581458}
CLAIM, CLAIM_ENROLMENT, PHARMACY_CLAIM = 32810, 32813, 32869
PRIMARY_DIAGNOSIS, SECONDARY_DIAGNOSIS = 32902, 32908
NEGATIVE, POSITIVE = 9189, 9191

LOCAL_CONCEPT_BASE = 2_000_000_000
BAND_SIZE = 40_000_000
# one band of local concept ids per source vocabulary; the top one ends below 2**31 - 1
VOCABULARY_BANDS = {"KCD": 0, "ATC": 1, "KR_FEE": 2}


def pseudo_concept_id(vocabulary: str, code: str) -> int:
    """A deterministic local concept id for a source code: SHA-256 of ``vocabulary:code`` into its band.

    OMOP keeps concept ids above 2,000,000,000 for local concepts; each vocabulary of ``VOCABULARY_BANDS``
    gets 40 million of them, so ids of different vocabularies never meet.
    """
    if vocabulary not in VOCABULARY_BANDS:
        known = ", ".join(VOCABULARY_BANDS)
        raise ValueError(f"The 'vocabulary' parameter of pseudo_concept_id must be one of {known}; got {vocabulary!r} instead.")
    digest = hashlib.sha256(f"{vocabulary}:{code}".encode()).digest()
    return LOCAL_CONCEPT_BASE + VOCABULARY_BANDS[vocabulary] * BAND_SIZE + int.from_bytes(digest[:8], "big") % BAND_SIZE


@dataclass(frozen=True)
class Lab:
    """How a made-up result of one fee-schedule lab test is drawn.

    ``mean`` and ``sd`` are on the log scale when ``log`` is set (geometric mean, log-sd). Patients
    whose claim carries a main diagnosis starting with ``raised_by`` get ``raise_by`` added to the mean
    (on the drawing scale). A ``qualitative`` test yields positive with probability ``mean``.
    """

    name: str
    unit: str | None
    unit_concept_id: int | None
    mean: float
    sd: float
    low: float | None
    high: float | None
    decimals: int = 1
    log: bool = False
    raised_by: tuple[str, ...] = ()
    raise_by: float = 0.0
    qualitative: bool = False


LABS: dict[str, Lab] = {
    "B1010": Lab("haemoglobin", "g/dL", 8713, 13.8, 1.6, 12.0, 16.5, raised_by=("N18",), raise_by=-2.5),
    "C2202": Lab("alanine aminotransferase", "U/L", None, np.log(24.0), 0.45, 0.0, 40.0, decimals=0, log=True,
                 raised_by=("C", "K7"), raise_by=0.5),
    "C3711": Lab("glucose", "mg/dL", 8840, 100.0, 15.0, 70.0, 99.0, decimals=0, raised_by=("E11",), raise_by=50.0),
    "C3750": Lab("haemoglobin A1c", "%", 8554, 5.5, 0.4, 4.0, 5.6, raised_by=("E11",), raise_by=1.8),
    "C2411": Lab("total cholesterol", "mg/dL", 8840, 190.0, 35.0, 120.0, 200.0, decimals=0, raised_by=("E78",),
                 raise_by=35.0),
    "C3795": Lab("creatinine", "mg/dL", 8840, np.log(0.9), 0.2, 0.6, 1.2, decimals=2, log=True, raised_by=("N18",),
                 raise_by=1.0),
    "D2200": Lab("urine specific gravity", None, None, 1.017, 0.006, 1.005, 1.030, decimals=3),
    "C4702": Lab("thyrotropin", "uIU/mL", None, np.log(1.8), 0.5, 0.4, 4.0, decimals=2, log=True),
    "C5504": Lab("carcinoembryonic antigen", "ng/mL", 8842, np.log(2.0), 0.6, 0.0, 5.0, decimals=1, log=True,
                 raised_by=("C",), raise_by=0.8),
    "C5506": Lab("prostate specific antigen", "ng/mL", 8842, np.log(1.2), 0.8, 0.0, 4.0, decimals=2, log=True,
                 raised_by=("C61", "N40"), raise_by=1.0),
    "E6541": Lab("heart rate (ECG)", "/min", None, 74.0, 11.0, 60.0, 100.0, decimals=0),
    "F6216": Lab("FEV1/FVC", "%", 8554, 78.0, 7.0, 70.0, 100.0, decimals=0, raised_by=("J44",), raise_by=-18.0),
    "D6591": Lab("influenza antigen", None, None, 0.1, 0.0, None, None, qualitative=True, raised_by=("J10", "J11"),
                 raise_by=0.7),
}
# a lab code without an entry in LABS: a unitless ratio around 1 (so a new simulator test still converts)
OTHER_LAB = Lab("other test", None, None, 0.0, 0.3, None, None, decimals=2, log=True)


# ----------------------------------------------------------------------------------------- helpers


def _arrow_type(column: Column) -> pa.DataType:
    """The OMOP CDM's own type: integers for ids and concept ids, else the type the loader casts to."""
    if column.type == "id" or (column.type in ("categorical", "code") and column.pattern == "^[0-9]+$"):
        return pa.int64()
    return {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "DATE": pa.date32(),
            "TIMESTAMP": pa.timestamp("us"), "BOOLEAN": pa.bool_()}[column.sql_type]


@cache
def _arrow_schemas() -> dict[str, pa.Schema]:
    """Arrow schema of every omop_cdm table: every column in the schema's order, non-nullable where required."""
    return {
        name: pa.schema([pa.field(c.name, _arrow_type(c), nullable=c.nullable) for c in table.columns.values()])
        for name, table in load_schema(SCHEMA_NAME).tables.items()
    }


def _table(name: str, n: int, columns: Mapping[str, pa.Array | np.ndarray | int]) -> pa.Table:
    """An omop_cdm table of ``n`` rows: given columns cast to the CDM type, a scalar repeated, the rest NULL."""
    schema = _arrow_schemas()[name]
    unknown = set(columns) - set(schema.names)
    if unknown:  # a typo here would silently drop a column
        raise KeyError(f"columns not in omop_cdm.{name}: {sorted(unknown)}")
    arrays = []
    for f in schema:
        value = columns.get(f.name)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
        elif isinstance(value, (int, np.integer)):
            arrays.append(pa.array(np.full(n, int(value), dtype=np.int64)).cast(f.type))
        else:
            arrays.append(pa.array(value).cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _ids(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.int64)


def _positions(keys: pa.Array, index: pa.Array, *, what: str) -> np.ndarray:
    """Row of ``index`` holding each key; a key found nowhere raises (the source has orphan rows)."""
    pos = pc.index_in(keys, value_set=index)
    missing = pos.null_count
    if missing:
        example = keys.filter(pc.is_null(pos))[0].as_py()
        raise ValueError(f"{missing} {what} value(s) have no matching row (e.g. {example!r}); validate the source against kr_claims first")
    return pos.to_numpy(zero_copy_only=False).astype(np.int64)


def _concept_ids(vocabulary: str, codes: pa.Array) -> pa.Array:
    """Pseudo concept ids of a column of codes (NULL stays NULL), one hash per distinct code."""
    encoded = pc.dictionary_encode(codes).combine_chunks() if isinstance(codes, pa.ChunkedArray) else pc.dictionary_encode(codes)
    distinct = encoded.dictionary.to_pylist()
    ids = [pseudo_concept_id(vocabulary, code) for code in distinct]
    if len(set(ids)) < len(ids):
        clash = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"pseudo concept ids collide in {vocabulary} ({clash}); change VOCABULARY_BANDS or BAND_SIZE")
    return pa.array(ids, type=pa.int64()).take(encoded.indices)


def _days(values: pa.Array) -> np.ndarray:
    """Dates as days since 1970-01-01 (NULL as a large negative number, to be masked by the caller)."""
    return pc.fill_null(values.cast(pa.int32()), -(2**30)).to_numpy(zero_copy_only=False).astype(np.int64)


def _dates(days: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.int32(), mask=mask).cast(pa.date32())


def _column(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


# ----------------------------------------------------------------------------------------- tables


def _birth_details(patients: pa.Table) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Month, day and datetime of birth from the resident registration number (YYMMDD-G...).

    The seventh digit gives the century (9, 0: 1800s; 1, 2, 5, 6: 1900s; 3, 4, 7, 8: 2000s). Where the
    number is missing, malformed, not a calendar date or disagrees with ``birth_year``, all three are NULL.
    """
    n = patients.num_rows
    if "rrn" not in patients.column_names:
        return pa.nulls(n, pa.int64()), pa.nulls(n, pa.int64()), pa.nulls(n, pa.timestamp("us"))
    rrn = _column(patients, "rrn").cast(pa.string())
    ok = pc.fill_null(pc.match_substring_regex(rrn, r"^[0-9]{6}-[0-9]"), False)
    rrn = pc.if_else(ok, rrn, pa.scalar("000000-0"))
    century_digit = pc.cast(pc.utf8_slice_codeunits(rrn, 7, 8), pa.int64()).to_numpy(zero_copy_only=False)
    century = np.array([1800, 1900, 1900, 2000, 2000, 1900, 1900, 2000, 2000, 1800])[century_digit]
    yy = pc.cast(pc.utf8_slice_codeunits(rrn, 0, 2), pa.int64()).to_numpy(zero_copy_only=False)
    year = century + yy
    text = pc.binary_join_element_wise(pa.array(year.astype(str)), pc.utf8_slice_codeunits(rrn, 2, 6), "")
    born = pc.strptime(text, format="%Y%m%d", unit="us", error_is_null=True)
    agrees = pc.and_(pc.and_(ok, pc.is_valid(born)),
                     pc.equal(pa.array(year), _column(patients, "birth_year").cast(pa.int64())))
    born = pc.if_else(pc.fill_null(agrees, False), born, pa.scalar(None, pa.timestamp("us")))
    return pc.month(born), pc.day(born), born


def _person(patients: pa.Table) -> pa.Table:
    n = patients.num_rows
    sex = _column(patients, "sex")
    region_values = load_schema("kr_claims").table("patients").column("region").values or []
    location = pc.index_in(_column(patients, "region"), value_set=pa.array(region_values))
    month, day, born = _birth_details(patients)
    return _table("person", n, {
        "person_id": _ids(n),
        "gender_concept_id": pc.if_else(pc.equal(sex, "M"), MALE, pc.if_else(pc.equal(sex, "F"), FEMALE, 0)),
        "year_of_birth": _column(patients, "birth_year"),
        "month_of_birth": month, "day_of_birth": day, "birth_datetime": born,
        "race_concept_id": 0, "ethnicity_concept_id": 0,
        "location_id": pc.add(location, 1),
        "person_source_value": _column(patients, "patient_id"),
        "gender_source_value": sex,
    })


def _observation_period(patients: pa.Table) -> pa.Table:
    n = patients.num_rows
    return _table("observation_period", n, {
        "person_id": _ids(n), "observation_period_id": _ids(n),
        "observation_period_start_date": _column(patients, "eligibility_start"),
        "observation_period_end_date": _column(patients, "eligibility_end"),
        "period_type_concept_id": CLAIM_ENROLMENT,
    })


def _preceding(person: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Row of each visit's previous visit of the same person (by start date, then row), -1 for the first."""
    order = np.lexsort((np.arange(len(person)), start, person))
    previous = np.full(len(person), -1, dtype=np.int64)
    same = person[order][1:] == person[order][:-1]
    previous[order[1:][same]] = order[:-1][same]
    return previous


def _visit_occurrence(claims: pa.Table, claim_person: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """The visits, and each visit's end day (days since 1970) for the tables that follow."""
    n = claims.num_rows
    care = _column(claims, "care_type")
    start = _days(_column(claims, "visit_date"))
    stay = pc.fill_null(_column(claims, "length_of_stay"), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    inpatient = pc.equal(care, "inpatient").to_numpy(zero_copy_only=False)
    end = np.where(inpatient, start + np.maximum(stay - 1, 0), start)
    concept = pc.index_in(care, value_set=pa.array(list(VISIT_CONCEPTS)))
    concept = pa.array(np.array(list(VISIT_CONCEPTS.values()), dtype=np.int64)).take(concept)
    previous = _preceding(claim_person, start)
    table = _table("visit_occurrence", n, {
        "person_id": claim_person + 1, "visit_occurrence_id": _ids(n),
        "visit_concept_id": pc.fill_null(concept, 0),
        "visit_start_date": _column(claims, "visit_date"), "visit_end_date": _dates(end),
        "visit_type_concept_id": CLAIM,
        "visit_source_value": _column(claims, "claim_id"),
        "preceding_visit_occurrence_id": pa.array(previous + 1, mask=previous < 0),
    })
    return table, end


def _condition_occurrence(diagnoses: pa.Table, claims: pa.Table, dx_claim: np.ndarray, claim_person: np.ndarray,
                          visit_end: np.ndarray) -> pa.Table:
    n = diagnoses.num_rows
    codes = _column(diagnoses, "kcd_code")
    concept = _concept_ids("KCD", codes)
    dx_type = _column(diagnoses, "dx_type")
    inpatient = pc.equal(_column(claims, "care_type"), "inpatient").to_numpy(zero_copy_only=False)[dx_claim]
    return _table("condition_occurrence", n, {
        "person_id": claim_person[dx_claim] + 1, "condition_occurrence_id": _ids(n),
        "condition_concept_id": concept,
        "condition_start_date": _column(claims, "visit_date").take(pa.array(dx_claim)),
        "condition_end_date": _dates(visit_end[dx_claim], mask=~inpatient),
        "condition_type_concept_id": CLAIM,
        "condition_status_concept_id": pc.if_else(pc.equal(dx_type, "main"), PRIMARY_DIAGNOSIS, SECONDARY_DIAGNOSIS),
        "visit_occurrence_id": dx_claim + 1,
        "condition_source_value": codes, "condition_source_concept_id": concept,
        "condition_status_source_value": dx_type,
    })


def _drug_exposure(prescriptions: pa.Table, claims: pa.Table, rx_claim: np.ndarray, claim_person: np.ndarray) -> pa.Table:
    n = prescriptions.num_rows
    codes = _column(prescriptions, "atc_code")
    concept = _concept_ids("ATC", codes)
    days = _column(prescriptions, "days_supplied").cast(pa.int64())
    start = _days(_column(claims, "visit_date"))[rx_claim]
    supply = pc.fill_null(days, 1).to_numpy(zero_copy_only=False)
    pharmacy = pc.equal(_column(claims, "care_type"), "pharmacy").to_numpy(zero_copy_only=False)[rx_claim]
    return _table("drug_exposure", n, {
        "person_id": claim_person[rx_claim] + 1, "drug_exposure_id": _ids(n),
        "drug_concept_id": concept,
        "drug_exposure_start_date": _dates(start),
        "drug_exposure_end_date": _dates(start + np.maximum(supply - 1, 0)),  # OMOP: start + days_supply - 1
        "drug_type_concept_id": np.where(pharmacy, PHARMACY_CLAIM, CLAIM).astype(np.int64),
        "quantity": pc.multiply(_column(prescriptions, "daily_dose").cast(pa.float64()), days.cast(pa.float64())),
        "days_supply": days,
        "visit_occurrence_id": rx_claim + 1,
        "drug_source_value": codes, "drug_source_concept_id": concept,
    })


def _procedure_occurrence(lines: pa.Table, claims: pa.Table, line_claim: np.ndarray, claim_person: np.ndarray) -> pa.Table:
    n = lines.num_rows
    codes = _column(lines, "treatment_code")
    concept = _concept_ids("KR_FEE", codes)
    quantity = np.round(pc.fill_null(_column(lines, "quantity"), 1.0).to_numpy(zero_copy_only=False)).astype(np.int64)
    return _table("procedure_occurrence", n, {
        "person_id": claim_person[line_claim] + 1, "procedure_occurrence_id": _ids(n),
        "procedure_concept_id": concept,
        "procedure_date": _column(claims, "visit_date").take(pa.array(line_claim)),
        "procedure_type_concept_id": CLAIM,
        "quantity": np.maximum(quantity, 0),
        "visit_occurrence_id": line_claim + 1,
        "procedure_source_value": codes, "procedure_source_concept_id": concept,
    })


def _lab_values(codes: list[str], main_dx: list[str | None], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Made-up results: one normal (or log-normal) draw per line, shifted for patients with a matching diagnosis."""
    n = len(codes)
    z = rng.standard_normal(n)
    u = rng.random(n)
    value = np.full(n, np.nan)
    answer = np.full(n, -1, dtype=np.int64)  # value_as_concept_id of qualitative tests
    unit = np.empty(n, dtype=object)
    unit_concept = np.full(n, -1, dtype=np.int64)
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    code_arr = np.array(codes, dtype=object)
    dx_arr = np.array([d or "" for d in main_dx], dtype=object)
    for code in dict.fromkeys(codes):
        lab = LABS.get(code, OTHER_LAB)
        rows = np.flatnonzero(code_arr == code)
        shift = np.zeros(len(rows))
        if lab.raised_by:
            raised = np.array([d.startswith(lab.raised_by) for d in dx_arr[rows]], dtype=bool)
            shift[raised] = lab.raise_by
        if lab.qualitative:
            answer[rows] = np.where(u[rows] < np.clip(lab.mean + shift, 0.0, 1.0), POSITIVE, NEGATIVE)
        else:
            draw = lab.mean + shift + lab.sd * z[rows]
            draw = np.exp(draw) if lab.log else np.maximum(draw, 0.0)
            value[rows] = np.round(draw, lab.decimals)
        unit[rows] = lab.unit
        if lab.unit_concept_id is not None:
            unit_concept[rows] = lab.unit_concept_id
        elif lab.unit is not None:
            unit_concept[rows] = 0  # a unit with no concept we are sure of: "no matching concept"
        low[rows] = np.nan if lab.low is None else lab.low
        high[rows] = np.nan if lab.high is None else lab.high
    return {"value": value, "answer": answer, "unit": unit, "unit_concept": unit_concept, "low": low, "high": high}


def _measurement(lines: pa.Table, claims: pa.Table, line_claim: np.ndarray, claim_person: np.ndarray, seed: int) -> pa.Table:
    n = lines.num_rows
    codes = _column(lines, "treatment_code")
    concept = _concept_ids("KR_FEE", codes)
    main_dx = _column(claims, "main_dx").take(pa.array(line_claim)).to_pylist()
    lab = _lab_values(codes.to_pylist(), main_dx, np.random.default_rng(seed))
    answer_text = np.where(lab["answer"] == POSITIVE, "positive", np.where(lab["answer"] == NEGATIVE, "negative", None))
    return _table("measurement", n, {
        "person_id": claim_person[line_claim] + 1, "measurement_id": _ids(n),
        "measurement_concept_id": concept,
        "measurement_date": _column(claims, "visit_date").take(pa.array(line_claim)),
        "measurement_type_concept_id": CLAIM,
        "value_as_number": pa.array(lab["value"], mask=np.isnan(lab["value"])),
        "value_as_concept_id": pa.array(lab["answer"], mask=lab["answer"] < 0),
        "unit_concept_id": pa.array(lab["unit_concept"], mask=lab["unit_concept"] < 0),
        "range_low": pa.array(lab["low"], mask=np.isnan(lab["low"])),
        "range_high": pa.array(lab["high"], mask=np.isnan(lab["high"])),
        "visit_occurrence_id": line_claim + 1,
        "measurement_source_value": codes, "measurement_source_concept_id": concept,
        "unit_source_value": pa.array(lab["unit"], type=pa.string()),
        "value_source_value": pa.array(answer_text, type=pa.string()),
    })


def _death(patients: pa.Table) -> pa.Table:
    died = pc.is_valid(_column(patients, "death_date")).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(died)
    return _table("death", len(rows), {
        "person_id": rows + 1,
        "death_date": _column(patients, "death_date").take(pa.array(rows)),
        "death_type_concept_id": CLAIM_ENROLMENT,
    })


def claims_to_omop(frames: Mapping[str, pa.Table], *, seed: int = 0) -> dict[str, pa.Table]:
    """OMOP CDM v5.4 tables (schema ``omop_cdm``) from kr_claims tables such as ``simulate`` returns.

    ``frames`` maps the kr_claims table names to pyarrow tables that conform to the kr_claims schema
    (validate them first when they do not come from the simulator). ``seed`` draws the made-up lab
    results; everything else is a deterministic function of the input. Returns one pyarrow table per
    omop_cdm table, every column of the CDM present in its order, with integer ids and concept ids.
    Raises ValueError when a source table is missing or a row refers to a key that does not exist.
    """
    missing = [t for t in SOURCE_TABLES if t not in frames]
    if missing:
        raise ValueError(f"The 'frames' parameter of claims_to_omop must hold the kr_claims tables {', '.join(SOURCE_TABLES)}; "
                         f"missing: {', '.join(missing)}")
    tables = {name: frames[name] for name in SOURCE_TABLES}
    patients, claims = tables["patients"], tables["claims"]
    claim_person = _positions(_column(claims, "patient_id"), _column(patients, "patient_id"), what="claims.patient_id")
    claim_ids = _column(claims, "claim_id")

    def claim_of(table: str) -> np.ndarray:
        return _positions(_column(tables[table], "claim_id"), claim_ids, what=f"{table}.claim_id")

    details = tables["claim_details"]
    category = _column(details, "category")
    procedures = details.filter(pc.is_in(category, value_set=pa.array(["procedure", "imaging"])))
    labs = details.filter(pc.equal(category, "lab"))

    visits, visit_end = _visit_occurrence(claims, claim_person)
    proc_claim = _positions(_column(procedures, "claim_id"), claim_ids, what="claim_details.claim_id")
    lab_claim = _positions(_column(labs, "claim_id"), claim_ids, what="claim_details.claim_id")
    return {
        "person": _person(patients),
        "observation_period": _observation_period(patients),
        "visit_occurrence": visits,
        "condition_occurrence": _condition_occurrence(tables["diagnoses"], claims, claim_of("diagnoses"), claim_person,
                                                      visit_end),
        "drug_exposure": _drug_exposure(tables["prescriptions"], claims, claim_of("prescriptions"), claim_person),
        "procedure_occurrence": _procedure_occurrence(procedures, claims, proc_claim, claim_person),
        "measurement": _measurement(labs, claims, lab_claim, claim_person, seed),
        "death": _death(patients),
    }
