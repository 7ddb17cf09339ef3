"""A simulated Korean National Health Insurance style claims population (schema ``kr_claims``).

The demo data of synthmed: patients with eligibility and deaths, claim statements (outpatient
visits, pharmacy dispensings, emergency visits, admissions), their fee-schedule detail lines,
diagnoses (KCD codes) and prescriptions (ATC codes). Everything is drawn from one seed, with numpy
only (no loop over rows), and conforms to ``data_schemas/builtin/kr_claims.yaml``.

How it is drawn:

* people: age pyramid, sex ratio by age, region and insurance shares of Korea around 2024; names,
  resident registration numbers (with check digit) and phone numbers look Korean;
* chronic conditions: prevalence by age and sex interpolated between age knots, made to co-occur
  through two latent factors (metabolic, smoking) in a Gaussian copula, so that marginal
  prevalences stay as given;
* eligibility: most people covered over the whole window, some enter during it (births,
  immigration), some leave (emigration) and some die (Gompertz mortality raised by conditions);
* care: regular visits of treatment programmes (a clinic every 30-90 days for hypertension and
  diabetes, chemotherapy every 21 days, monthly dialysis statements), sporadic and acute episodes
  with follow-up visits, emergency visits of which some lead to an admission, pregnancies and
  deliveries, and terminal admissions; prescriptions of outpatient visits are dispensed the same
  day by a community pharmacy (its own claim);
* costs: fee-schedule lines priced by institution type (``total_cost`` is the sum of the lines
  plus the drug costs of the claim's prescriptions) and the patient's share by the rules of the
  national insurance (coinsurance by institution type, flat fees for the elderly at clinics and
  pharmacies, 5 % for registered cancer patients, medical aid).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields, replace
from functools import cache
from numbers import Integral

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import ndtri

from data_schemas.io import load_schema

__all__ = ["simulate"]

SCHEMA_NAME = "kr_claims"
MIN_REFERENCE = dt.date(2001, 1, 1)
MAX_REFERENCE = dt.date(2030, 12, 31)
WINDOW_DAYS = 365
EPOCH = dt.date(1970, 1, 1)
FLOOR_BIRTH = (dt.date(1900, 1, 1) - EPOCH).days

AGE_KNOTS = np.array([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], dtype=float)

CARE_TYPES = ("inpatient", "outpatient", "pharmacy", "emergency")
INPATIENT, OUTPATIENT, PHARMACY, EMERGENCY = range(4)
# order of claims of one patient on one day: emergency room, visit, admission, then the pharmacy
CARE_RANK = np.array([2, 1, 3, 0])

INSTITUTIONS = ("tertiary_hospital", "general_hospital", "hospital", "clinic", "pharmacy", "public_health_center")
TERTIARY, GENERAL, HOSPITAL, CLINIC, DRUGSTORE, HEALTH_CENTER = range(6)

REGIONS = ("seoul", "busan", "daegu", "incheon", "gwangju", "daejeon", "ulsan", "sejong", "gyeonggi",
           "gangwon", "chungbuk", "chungnam", "jeonbuk", "jeonnam", "gyeongbuk", "gyeongnam", "jeju")
# resident registration population, 2024 (millions)
REGION_POPULATION = (9.34, 3.27, 2.36, 3.02, 1.41, 1.44, 1.10, 0.39, 13.69,
                     1.52, 1.59, 2.13, 1.74, 1.79, 2.54, 3.24, 0.67)
# population by five-year age group 0-4, 5-9, ..., 90-94, 95-100 (millions, 2024 estimate)
AGE_GROUP_POPULATION = (1.2, 1.9, 2.3, 2.3, 2.7, 3.4, 3.4, 3.3, 3.8, 4.0,
                        4.3, 4.1, 4.1, 3.4, 2.4, 1.7, 1.3, 0.7, 0.25, 0.06)
MALE_SHARE = (0.513, 0.515, 0.52, 0.52, 0.51, 0.505, 0.49, 0.46, 0.38, 0.28, 0.2)
MEDICAL_AID_SHARE = (0.02, 0.02, 0.02, 0.018, 0.018, 0.02, 0.03, 0.045, 0.06, 0.07, 0.07)
EMPLOYEE_SHARE = 0.72  # of those not on medical aid

ENTRANT_SHARE = 0.03       # acquire eligibility during the window (immigration, return)
EMIGRATION_RATE = 0.006    # lose eligibility per person-year
COVERED_YEARS = 10.0       # mean time since the last change of eligibility

SURNAMES = (("Kim", 21.5), ("Lee", 14.7), ("Park", 8.4), ("Choi", 4.7), ("Jung", 4.3), ("Kang", 2.3),
            ("Cho", 2.1), ("Yoon", 2.1), ("Jang", 2.0), ("Lim", 1.7), ("Han", 1.5), ("Oh", 1.5),
            ("Seo", 1.5), ("Shin", 1.4), ("Kwon", 1.4), ("Hwang", 1.4), ("Ahn", 1.3), ("Song", 1.3),
            ("Jeon", 1.1), ("Hong", 1.1), ("Yoo", 1.1), ("Ko", 0.9), ("Moon", 0.9), ("Yang", 0.9),
            ("Son", 0.9), ("Bae", 0.8), ("Baek", 0.7), ("Heo", 0.7), ("Nam", 0.6), ("Noh", 0.5))
GIVEN_NAMES = {
    ("M", "old"): ("Youngsoo", "Youngho", "Youngchul", "Jungho", "Kwangsoo", "Sangchul", "Seongho", "Jongsoo",
                   "Byungchul", "Myungsoo", "Dongsoo", "Kyungsoo", "Jaeho", "Sungsoo", "Chulsoo"),
    ("M", "mid"): ("Jihoon", "Donghyun", "Sungmin", "Hyunwoo", "Junho", "Jaehyun", "Sangwoo", "Minsu",
                   "Seungmin", "Jinwoo", "Taehyun", "Woojin", "Minho", "Hyunsoo", "Jiwon"),
    ("M", "new"): ("Minjun", "Seojun", "Doyun", "Yejun", "Siwoo", "Hajun", "Jiho", "Junseo", "Junwoo",
                   "Eunwoo", "Dohyun", "Geonwoo", "Woojin", "Sunwoo", "Yuchan"),
    ("F", "old"): ("Youngja", "Sunja", "Okja", "Jungsook", "Younghee", "Myungsook", "Soonja", "Kyungja",
                   "Jungja", "Mija", "Youngsook", "Kyungsook", "Sookja", "Jungae", "Mikyung"),
    ("F", "mid"): ("Jiyoung", "Eunjung", "Hyejin", "Minji", "Eunji", "Soyeon", "Jieun", "Sujin", "Yumi",
                   "Jihye", "Hyunjoo", "Mijin", "Eunkyung", "Sunyoung", "Jiyeon"),
    ("F", "new"): ("Seoyeon", "Seoyun", "Jiwoo", "Seohyun", "Minseo", "Haeun", "Hayoon", "Jiyoon", "Chaewon",
                   "Sua", "Jia", "Yuna", "Seoa", "Jimin", "Subin"),
}


# ----------------------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Drug:
    """One drug: ATC code (level 5), price per unit in KRW, usual daily doses, fixed days if any."""

    atc: str
    price: float
    doses: tuple[float, ...] = (1.0,)
    days: int | None = None


@dataclass(frozen=True)
class DrugGroup:
    """Alternatives of one therapeutic role: joins a prescription with ``prob``, one option by weight."""

    prob: float
    options: tuple[tuple[Drug, float], ...]


@dataclass(frozen=True)
class Item:
    """A fee-schedule item: category, code, base price (KRW), chance per claim, quantity range."""

    category: str
    code: str
    price: float
    prob: float = 1.0
    qty: tuple[int, int] = (1, 1)
    sigma: float = 0.0  # log-sd of the price around the fee (materials, drugs, surgery variants)


@dataclass(frozen=True)
class Reason:
    """Why a claim is made: its KCD codes and how such care is delivered, prescribed and billed."""

    name: str
    codes: tuple[tuple[str, float], ...]
    setting: str = "primary"
    rx: float = 0.0
    drugs: tuple[DrugGroup, ...] = ()
    days: tuple[int, int] = (3, 7)
    items: tuple[Item, ...] = ()
    stay_items: tuple[Item, ...] = ()
    los: tuple[float, float] = (5.0, 0.6)  # median days and log-sd of a stay
    er_admit: float = 0.3
    secondary: tuple[tuple[str, float], ...] = ()
    secondary_prob: float = 0.0
    copay: str = "standard"
    in_house: bool = False
    followups: float = 0.0  # mean return visits of an episode


@dataclass(frozen=True)
class Condition:
    """A chronic condition: prevalence by age and sex, co-occurrence loadings and care rates."""

    reason: Reason
    male: tuple[float, ...]
    female: tuple[float, ...]
    metabolic: float = 0.0
    smoking: float = 0.0
    hazard: float = 1.0   # mortality hazard ratio
    sporadic: float = 0.0  # outpatient episodes per year outside the programme
    er: float = 0.0        # emergency visits per year
    admit: float = 0.0     # direct admissions per year


@dataclass(frozen=True)
class Acute:
    """An acute reason: episodes per person-year by age, sex restriction and where it is seen."""

    reason: Reason
    rate: tuple[float, ...]
    sex: str | None = None
    female_ratio: float = 1.0
    emergency: float = 0.0
    inpatient: float = 0.0


@dataclass(frozen=True)
class Programme:
    """Regular visits for patients with one of ``conditions`` (the first they have is the main one)."""

    name: str
    conditions: tuple[str, ...]
    intervals: tuple[tuple[int, float], ...]  # (days between visits, share of patients)
    # joins when the patient's uniform of the main condition lies in the band: 90 % are treated
    # regularly by default; disjoint bands split patients (chemotherapy or follow-up)
    band: tuple[float, float] = (0.0, 0.9)
    codes: tuple[str, ...] = ()          # only patients with one of these codes (dialysis)
    reason: Reason | None = None         # the visits' own reason, else the main condition's
    admit: float = 0.0                   # admissions per year of members
    jitter: int = 4                      # days a visit may move from the schedule


def _g(prob: float, *options: tuple[Drug, float]) -> DrugGroup:
    return DrugGroup(prob, tuple(options))


def _p(item: Item, prob: float, qty: tuple[int, int] | None = None) -> Item:
    return replace(item, prob=prob, qty=item.qty if qty is None else qty)


# drugs (price per unit in KRW, doses in units a day)
LOSARTAN, VALSARTAN = Drug("C09CA01", 400), Drug("C09CA03", 450)
TELMISARTAN, OLMESARTAN = Drug("C09CA07", 420), Drug("C09CA08", 480)
AMLODIPINE, FELODIPINE = Drug("C08CA01", 330), Drug("C08CA02", 300)
AMLO_VALSARTAN = Drug("C09DB01", 650)
HCTZ, INDAPAMIDE = Drug("C03AA03", 40), Drug("C03BA11", 150)
BISOPROLOL, CARVEDILOL, NEBIVOLOL = Drug("C07AB07", 170), Drug("C07AG02", 180, (2.0,)), Drug("C07AB12", 400)
METFORMIN = Drug("A10BA02", 100, (1.0, 2.0, 2.0, 3.0))
SITAGLIPTIN, GEMIGLIPTIN, LINAGLIPTIN = Drug("A10BH01", 520), Drug("A10BH06", 550), Drug("A10BH05", 560)
SITA_METFORMIN = Drug("A10BD07", 600, (1.0, 2.0))
GLIMEPIRIDE, PIOGLITAZONE = Drug("A10BB12", 80, (1.0, 2.0)), Drug("A10BG03", 300)
DAPAGLIFLOZIN, EMPAGLIFLOZIN = Drug("A10BK01", 510), Drug("A10BK03", 560)
GLARGINE = Drug("A10AE04", 47, (14.0, 20.0, 26.0, 32.0))
ATORVASTATIN, ROSUVASTATIN = Drug("C10AA05", 400), Drug("C10AA07", 450)
SIMVASTATIN, PRAVASTATIN = Drug("C10AA01", 150), Drug("C10AA03", 300)
ROSU_EZETIMIBE, EZETIMIBE = Drug("C10BA06", 750), Drug("C10AX09", 500)
FENOFIBRATE, OMEGA3 = Drug("C10AB05", 250), Drug("C10AX06", 400, (2.0,))
SALMETEROL_FLUTICASONE = Drug("R03AK06", 330, (2.0,))
FORMOTEROL_BUDESONIDE = Drug("R03AK07", 300, (2.0,))
MONTELUKAST, SALBUTAMOL = Drug("R03DC03", 500), Drug("R03AC02", 60, (2.0, 4.0))
TIOTROPIUM, UMECLIDINIUM_VILANTEROL = Drug("R03BB04", 1_200), Drug("R03AL03", 1_400)
THEOPHYLLINE = Drug("R03DA04", 60, (2.0,))
ESCITALOPRAM, SERTRALINE = Drug("N06AB10", 700), Drug("N06AB06", 500, (1.0, 2.0))
PAROXETINE, FLUOXETINE = Drug("N06AB05", 500), Drug("N06AB03", 300)
MIRTAZAPINE, VENLAFAXINE, BUPROPION = Drug("N06AX11", 400), Drug("N06AX16", 600), Drug("N06AX12", 500)
TRAZODONE = Drug("N06AX05", 150)
ALPRAZOLAM, LORAZEPAM = Drug("N05BA12", 40, (1.0, 2.0)), Drug("N05BA06", 50, (1.0, 2.0))
ZOLPIDEM = Drug("N05CF02", 200)
ACECLOFENAC, CELECOXIB = Drug("M01AB16", 150, (2.0,)), Drug("M01AH01", 350, (1.0, 2.0))
MELOXICAM, DICLOFENAC = Drug("M01AC06", 100), Drug("M01AB05", 40, (2.0, 3.0))
IBUPROFEN, DEXIBUPROFEN = Drug("M01AE01", 50, (3.0,)), Drug("M01AE14", 100, (3.0,))
NAPROXEN = Drug("M01AE02", 100, (2.0,))
PARACETAMOL = Drug("N02BE01", 40, (2.0, 3.0))
TRAMADOL_PARACETAMOL = Drug("N02AJ13", 230, (2.0, 3.0))
EPERISONE, THIOCOLCHICOSIDE = Drug("M03BX09", 80, (3.0,)), Drug("M03BX05", 150, (2.0,))
GLUCOSAMINE = Drug("M01AX05", 200, (2.0,))
REBAMIPIDE = Drug("A02BX14", 100, (2.0, 3.0))
SEVELAMER, CALCITRIOL = Drug("V03AE02", 300, (3.0, 6.0)), Drug("A11CC04", 250)
FUROSEMIDE = Drug("C03CA01", 30)
ASPIRIN, CLOPIDOGREL, TICAGRELOR = Drug("B01AC06", 40), Drug("B01AC04", 700), Drug("B01AC24", 1_500, (2.0,))
CILOSTAZOL = Drug("B01AC23", 300, (2.0,))
ISOSORBIDE, NICORANDIL = Drug("C01DA14", 100), Drug("C01DX16", 100, (2.0, 3.0))
APIXABAN, RIVAROXABAN, EDOXABAN = Drug("B01AF02", 1_400, (2.0,)), Drug("B01AF01", 2_100), Drug("B01AF03", 2_100)
CHOLINE_ALFOSCERATE = Drug("N07AX02", 450, (2.0, 3.0))
TAMSULOSIN, SILODOSIN = Drug("G04CA02", 350), Drug("G04CA04", 400, (1.0, 2.0))
FINASTERIDE, DUTASTERIDE = Drug("G04CB01", 700), Drug("G04CB02", 800)
TAMOXIFEN, LETROZOLE, ANASTROZOLE = Drug("L02BA01", 300), Drug("L02BG04", 1_000), Drug("L02BG03", 900)
BICALUTAMIDE, ENZALUTAMIDE = Drug("L02BB03", 1_200), Drug("L02BB04", 30_000, (4.0,))
LEVOTHYROXINE = Drug("H03AA01", 30, (1.0, 1.5, 2.0))
ESOMEPRAZOLE, OMEPRAZOLE = Drug("A02BC05", 800), Drug("A02BC01", 600)
LANSOPRAZOLE, PANTOPRAZOLE = Drug("A02BC03", 700), Drug("A02BC02", 650)
FAMOTIDINE, ITOPRIDE = Drug("A02BA03", 100, (2.0,)), Drug("A03FA07", 90, (3.0,))
DOMPERIDONE, TRIMEBUTINE = Drug("A03FA03", 60, (3.0,)), Drug("A03AA05", 70, (3.0,))
DIOSMECTITE, PROBIOTIC = Drug("A07BC05", 200, (3.0,)), Drug("A07FA01", 120, (3.0,))
OXALIPLATIN, DOCETAXEL = Drug("L01XA03", 350_000, days=1), Drug("L01CD02", 250_000, days=1)
PACLITAXEL = Drug("L01CD01", 150_000, days=1)
NIVOLUMAB, PEMBROLIZUMAB = Drug("L01FF01", 2_500_000, days=1), Drug("L01FF02", 3_000_000, days=1)
IRINOTECAN, BEVACIZUMAB = Drug("L01CE02", 150_000, days=1), Drug("L01FG01", 1_300_000, days=1)
FLUOROURACIL, PEMETREXED = Drug("L01BC02", 15_000, days=1), Drug("L01BA04", 600_000, days=1)
CARBOPLATIN, CISPLATIN = Drug("L01XA02", 60_000, days=1), Drug("L01XA01", 25_000, days=1)
TRASTUZUMAB, DOXORUBICIN = Drug("L01FD01", 1_000_000, days=1), Drug("L01DB01", 50_000, days=1)
CYCLOPHOSPHAMIDE = Drug("L01AA01", 15_000, days=1)
CAPECITABINE = Drug("L01BC06", 1_500, (4.0, 6.0), days=14)
TEGAFUR = Drug("L01BC53", 4_000, (2.0,), days=14)
OSIMERTINIB, GEFITINIB = Drug("L01EB04", 200_000, days=21), Drug("L01EB01", 35_000, days=21)
ONDANSETRON, PALONOSETRON = Drug("A04AA01", 4_000, (2.0,), days=3), Drug("A04AA05", 60_000, days=1)
DEXAMETHASONE = Drug("H02AB02", 100, (2.0, 4.0), days=3)
AMOXICILLIN, AMOX_CLAV = Drug("J01CA04", 100, (3.0,)), Drug("J01CR02", 400, (2.0, 3.0))
CEFACLOR, CEFIXIME = Drug("J01DC04", 250, (3.0,)), Drug("J01DD08", 400, (2.0,))
CEFADROXIL, CEFUROXIME = Drug("J01DB05", 200, (2.0,)), Drug("J01DC02", 450, (2.0,))
CLARITHROMYCIN, AZITHROMYCIN = Drug("J01FA09", 550, (2.0,)), Drug("J01FA10", 1_000, days=3)
CIPROFLOXACIN, LEVOFLOXACIN = Drug("J01MA02", 200, (2.0,)), Drug("J01MA12", 600)
NITROFURANTOIN, PHENAZOPYRIDINE = Drug("J01XE01", 150, (4.0,)), Drug("G04BX06", 60, (3.0,))
OSELTAMIVIR = Drug("J05AH02", 2_300, (2.0,), days=5)
CHLORPHENAMINE, CETIRIZINE = Drug("R06AB04", 10, (3.0,)), Drug("R06AE07", 150)
LEVOCETIRIZINE, DESLORATADINE = Drug("R06AE09", 200), Drug("R06AX27", 300)
FEXOFENADINE = Drug("R06AX26", 300, (1.0, 2.0))
AMBROXOL, ACETYLCYSTEINE = Drug("R05CB06", 50, (3.0,)), Drug("R05CB01", 100, (3.0,))
ERDOSTEINE, DEXTROMETHORPHAN = Drug("R05CB15", 170, (2.0,)), Drug("R05DA09", 20, (3.0,))
PSEUDOEPHEDRINE = Drug("R01BA02", 40, (3.0,))
MOMETASONE_NASAL, FLUTICASONE_NASAL = Drug("R01AD09", 150, (2.0,)), Drug("R01AD12", 160, (2.0,))
BETAMETHASONE_SKIN, HYDROCORTISONE_SKIN = Drug("D07AC01", 100, (2.0,)), Drug("D07AB02", 100, (2.0,))
TACROLIMUS_SKIN, MUPIROCIN = Drug("D11AH01", 300, (2.0,)), Drug("D06AX09", 100, (2.0,))
LEVOFLOXACIN_EYE, OFLOXACIN_EYE = Drug("S01AE05", 80, (4.0,)), Drug("S01AE01", 70, (4.0,))
OLOPATADINE_EYE, HYALURONATE_EYE = Drug("S01GX09", 100, (2.0,)), Drug("S01XA20", 60, (4.0, 6.0))
PREDNISOLONE_EYE = Drug("S01BA04", 100, (4.0,))
METRONIDAZOLE, FLUCONAZOLE = Drug("P01AB01", 50, (2.0, 3.0)), Drug("J02AC01", 1_800, days=1)
CLOTRIMAZOLE_VAGINAL = Drug("G01AF02", 500, days=6)
ESTRADIOL, TIBOLONE = Drug("G03CA03", 300), Drug("G03CX01", 800)
MEDROXYPROGESTERONE = Drug("G03DA02", 200, (1.0, 2.0), days=10)
SUMATRIPTAN, FLUNARIZINE = Drug("N02CC01", 3_000, days=3), Drug("N07CA03", 100)
CHLORHEXIDINE = Drug("A01AB03", 50, (2.0, 3.0))
FERROUS, FOLIC_ACID = Drug("B03AA07", 100), Drug("B03BB01", 20)
DOXYLAMINE_PYRIDOXINE = Drug("R06AA59", 700, (2.0, 4.0))

ANTIPYRETIC = _g(0.7, (PARACETAMOL, 0.55), (IBUPROFEN, 0.25), (DEXIBUPROFEN, 0.2))
NSAID = _g(0.85, (ACECLOFENAC, 0.4), (CELECOXIB, 0.2), (MELOXICAM, 0.1), (DICLOFENAC, 0.1),
           (TRAMADOL_PARACETAMOL, 0.2))
GASTRO_PROTECT = _g(0.6, (REBAMIPIDE, 0.7), (FAMOTIDINE, 0.3))
ANTIEMETIC = _g(0.9, (ONDANSETRON, 0.6), (PALONOSETRON, 0.4))
STEROID = _g(0.6, (DEXAMETHASONE, 1.0))

# fee-schedule items (base prices in KRW at a clinic; other institution types add their margin)
CBC = Item("lab", "B1010", 3_100)
CHEMISTRY = Item("lab", "C2202", 2_900)
GLUCOSE = Item("lab", "C3711", 1_400)
HBA1C = Item("lab", "C3750", 6_900)
LIPIDS = Item("lab", "C2411", 9_800)
CREATININE = Item("lab", "C3795", 1_600)
URINALYSIS = Item("lab", "D2200", 1_100)
TSH = Item("lab", "C4702", 10_000)
TUMOUR_MARKER = Item("lab", "C5504", 13_000)
PSA = Item("lab", "C5506", 15_000)
ECG = Item("lab", "E6541", 5_200)
SPIROMETRY = Item("lab", "F6216", 16_000)
INFLUENZA_TEST = Item("lab", "D6591", 18_000)
XRAY_CHEST = Item("imaging", "G2101", 9_400)
XRAY_SPINE = Item("imaging", "G4101", 14_000)
XRAY_LIMB = Item("imaging", "G4301", 10_000)
XRAY_DENTAL = Item("imaging", "G9501", 13_000)
CT = Item("imaging", "HA424", 120_000, sigma=0.25)
MRI = Item("imaging", "HE101", 330_000, sigma=0.25)
ULTRASOUND = Item("imaging", "EB441", 70_000, sigma=0.2)
ULTRASOUND_PRENATAL = Item("imaging", "EB581", 55_000, sigma=0.1)
ULTRASOUND_PELVIC = Item("imaging", "EB561", 60_000, sigma=0.1)
ECHOCARDIOGRAM = Item("imaging", "EB412", 150_000, sigma=0.2)
ENDOSCOPY = Item("procedure", "E7611", 52_000, sigma=0.2)
HEAT_THERAPY = Item("procedure", "MM010", 1_100)
INTERFERENTIAL = Item("procedure", "MM070", 3_300)
REHABILITATION = Item("procedure", "MM105", 12_000, qty=(1, 2))
NEBULISER = Item("procedure", "MM290", 2_000)
PSYCHOTHERAPY = Item("procedure", "NN021", 13_000)
NERVE_BLOCK = Item("procedure", "LA211", 25_000, sigma=0.3)
DRESSING = Item("procedure", "M0111", 4_500)
SPLINT = Item("procedure", "N0071", 30_000, sigma=0.3)
SCALING = Item("procedure", "U2233", 45_000)
FILLING = Item("procedure", "U0242", 30_000, sigma=0.2)
ROOT_CANAL = Item("procedure", "U0211", 40_000, sigma=0.2)
EXTRACTION = Item("procedure", "U4412", 25_000, sigma=0.2)
DIALYSIS = Item("procedure", "O7020", 155_000, qty=(12, 14))
IM_INJECTION = Item("injection", "KK010", 3_000, sigma=0.5)
JOINT_INJECTION = Item("injection", "KK051", 25_000, sigma=0.4)
EPO_INJECTION = Item("injection", "KK012", 35_000, sigma=0.3)
IV_INJECTION = Item("injection", "KK052", 20_000, sigma=0.6)
CHEMO_ADMINISTRATION = Item("injection", "KK157", 30_000)
HIP_SURGERY = Item("procedure", "N0715", 2_000_000, sigma=0.3)
KNEE_REPLACEMENT = Item("procedure", "N2072", 3_200_000, sigma=0.2)
PCI = Item("procedure", "M6552", 3_500_000, sigma=0.3)
THROMBECTOMY = Item("procedure", "M6633", 4_000_000, sigma=0.3)
CANCER_SURGERY = Item("procedure", "QA671", 5_000_000, sigma=0.6)
TURP = Item("procedure", "R3500", 1_200_000, sigma=0.3)
SPINE_SURGERY = Item("procedure", "N2470", 2_500_000, sigma=0.4)
CATARACT_SURGERY = Item("procedure", "S5119", 900_000, sigma=0.2)
APPENDECTOMY = Item("procedure", "Q2861", 1_100_000, sigma=0.3)
VAGINAL_DELIVERY = Item("procedure", "R4351", 700_000, sigma=0.2)
CAESAREAN_SECTION = Item("procedure", "R5001", 1_000_000, sigma=0.2)

# consultation (first, return), emergency management and ward fees by institution type
CONSULTATION = {
    TERTIARY: (("AA157", 21_700), ("AA257", 15_500)),
    GENERAL: (("AA156", 19_900), ("AA256", 14_300)),
    HOSPITAL: (("AA155", 18_900), ("AA255", 13_500)),
    CLINIC: (("AA154", 18_410), ("AA254", 13_150)),
    HEALTH_CENTER: (("AA158", 12_000), ("AA258", 8_600)),
}
EMERGENCY_FEE = {TERTIARY: 66_000, GENERAL: 24_000, HOSPITAL: 19_000, CLINIC: 15_000, HEALTH_CENTER: 15_000}
WARD_FEE = {TERTIARY: 72_000, GENERAL: 58_000, HOSPITAL: 47_000, CLINIC: 40_000, HEALTH_CENTER: 40_000}
INSTITUTION_MARGIN = np.array([1.13, 1.087, 1.043, 1.0, 1.0, 1.0])
# pharmacy fees: management, basic dispensing, counselling, then dispensing by days supplied
PHARMACY_FEES = (("Z1000", 790), ("Z2000", 1_720), ("Z3000", 1_150))
DISPENSING_BY_DAYS = ((3, "Z4103", 2_900), (7, "Z4107", 4_000), (15, "Z4115", 5_800), (30, "Z4130", 8_400),
                      (60, "Z4160", 10_500), (90, "Z4190", 12_000), (365, "Z4191", 13_000))
EMERGENCY_ITEMS = (_p(CBC, 0.7), _p(CHEMISTRY, 0.6), _p(XRAY_CHEST, 0.45), _p(CT, 0.2), _p(ECG, 0.3),
                   _p(IV_INJECTION, 0.6, qty=(1, 1)))
STAY_ITEMS = (_p(CBC, 1.0, qty=(1, 4)), _p(CHEMISTRY, 0.9, qty=(1, 3)), _p(XRAY_CHEST, 0.8, qty=(1, 2)),
              _p(URINALYSIS, 0.5), _p(CT, 0.3), _p(MRI, 0.06))

# where care is delivered: probabilities over INSTITUTIONS by setting and care type
INSTITUTION_PROBS: dict[tuple[str, int], tuple[float, ...]] = {
    ("primary", OUTPATIENT): (0.03, 0.05, 0.07, 0.82, 0.0, 0.03),
    ("specialist", OUTPATIENT): (0.2, 0.25, 0.13, 0.42, 0.0, 0.0),
    ("cancer", OUTPATIENT): (0.65, 0.33, 0.02, 0.0, 0.0, 0.0),
    ("dental", OUTPATIENT): (0.01, 0.01, 0.02, 0.96, 0.0, 0.0),
    ("obstetric", OUTPATIENT): (0.05, 0.1, 0.25, 0.6, 0.0, 0.0),
    ("psychiatry", OUTPATIENT): (0.04, 0.06, 0.1, 0.8, 0.0, 0.0),
    ("primary", INPATIENT): (0.12, 0.35, 0.45, 0.08, 0.0, 0.0),
    ("specialist", INPATIENT): (0.3, 0.4, 0.27, 0.03, 0.0, 0.0),
    ("cancer", INPATIENT): (0.65, 0.33, 0.02, 0.0, 0.0, 0.0),
    ("dental", INPATIENT): (0.2, 0.4, 0.4, 0.0, 0.0, 0.0),
    ("obstetric", INPATIENT): (0.05, 0.2, 0.35, 0.4, 0.0, 0.0),
    ("psychiatry", INPATIENT): (0.05, 0.2, 0.75, 0.0, 0.0, 0.0),
}
EMERGENCY_PROBS = (0.25, 0.6, 0.15, 0.0, 0.0, 0.0)
SETTINGS = ("primary", "specialist", "cancer", "dental", "obstetric", "psychiatry")

# ----- chronic conditions
CHRONIC_DAYS = (28, 30)  # days supplied at visits outside the regular programme
HYPERTENSION = Reason(
    "hypertension", (("I10", 1.0),), rx=0.97, days=CHRONIC_DAYS,
    drugs=(_g(0.75, (LOSARTAN, 0.3), (VALSARTAN, 0.2), (TELMISARTAN, 0.25), (OLMESARTAN, 0.25)),
           _g(0.5, (AMLODIPINE, 0.8), (FELODIPINE, 0.1), (AMLO_VALSARTAN, 0.1)),
           _g(0.15, (HCTZ, 0.6), (INDAPAMIDE, 0.4)),
           _g(0.12, (BISOPROLOL, 0.4), (CARVEDILOL, 0.4), (NEBIVOLOL, 0.2))),
    items=(_p(ECG, 0.08), _p(CHEMISTRY, 0.12), _p(URINALYSIS, 0.08), _p(CREATININE, 0.1)),
    los=(5.0, 0.5), er_admit=0.3,
)
DIABETES = Reason(
    "diabetes", (("E11.9", 0.55), ("E11.2", 0.1), ("E11.3", 0.07), ("E11.4", 0.08), ("E11.5", 0.04),
                 ("E11.7", 0.08), ("E11.8", 0.08)), rx=0.97, days=CHRONIC_DAYS,
    drugs=(_g(0.85, (METFORMIN, 0.75), (SITA_METFORMIN, 0.25)),
           _g(0.45, (SITAGLIPTIN, 0.3), (GEMIGLIPTIN, 0.3), (LINAGLIPTIN, 0.4)),
           _g(0.2, (DAPAGLIFLOZIN, 0.5), (EMPAGLIFLOZIN, 0.5)),
           _g(0.15, (GLIMEPIRIDE, 0.8), (PIOGLITAZONE, 0.2)),
           _g(0.07, (GLARGINE, 1.0))),
    items=(_p(GLUCOSE, 0.6), _p(HBA1C, 0.35), _p(CREATININE, 0.25), _p(LIPIDS, 0.1)),
    los=(7.0, 0.5), er_admit=0.4,
)
DYSLIPIDAEMIA = Reason(
    "dyslipidaemia", (("E78.5", 0.5), ("E78.0", 0.3), ("E78.2", 0.15), ("E78.1", 0.05)), rx=0.95, days=CHRONIC_DAYS,
    drugs=(_g(0.9, (ATORVASTATIN, 0.4), (ROSUVASTATIN, 0.3), (ROSU_EZETIMIBE, 0.15), (SIMVASTATIN, 0.05),
                (PRAVASTATIN, 0.1)),
           _g(0.15, (EZETIMIBE, 0.4), (FENOFIBRATE, 0.4), (OMEGA3, 0.2))),
    items=(_p(LIPIDS, 0.3), _p(CHEMISTRY, 0.2)),
)
ASTHMA = Reason(
    "asthma", (("J45.9", 0.7), ("J45.0", 0.2), ("J45.1", 0.1)), rx=0.95, days=(7, 30),
    drugs=(_g(0.6, (SALMETEROL_FLUTICASONE, 0.5), (FORMOTEROL_BUDESONIDE, 0.5)),
           _g(0.5, (MONTELUKAST, 1.0)), _g(0.3, (SALBUTAMOL, 1.0)), _g(0.1, (THEOPHYLLINE, 1.0))),
    items=(_p(SPIROMETRY, 0.12), _p(XRAY_CHEST, 0.08), _p(NEBULISER, 0.15)),
    los=(5.0, 0.5), er_admit=0.25, followups=0.5,
)
COPD = Reason(
    "copd", (("J44.9", 0.6), ("J44.1", 0.25), ("J44.8", 0.15)), setting="specialist", rx=0.95, days=(7, 30),
    drugs=(_g(0.7, (TIOTROPIUM, 0.5), (UMECLIDINIUM_VILANTEROL, 0.5)),
           _g(0.3, (SALMETEROL_FLUTICASONE, 0.5), (FORMOTEROL_BUDESONIDE, 0.5)),
           _g(0.3, (THEOPHYLLINE, 0.4), (ERDOSTEINE, 0.6)), _g(0.25, (SALBUTAMOL, 1.0))),
    items=(_p(SPIROMETRY, 0.2), _p(XRAY_CHEST, 0.2), _p(NEBULISER, 0.1)),
    los=(8.0, 0.5), er_admit=0.5, followups=0.5,
)
DEPRESSION = Reason(
    "depression", (("F32.9", 0.4), ("F32.1", 0.2), ("F33.9", 0.15), ("F33.1", 0.15), ("F32.0", 0.1)),
    setting="psychiatry", rx=0.9, days=(14, 28),
    drugs=(_g(0.9, (ESCITALOPRAM, 0.35), (SERTRALINE, 0.2), (PAROXETINE, 0.1), (FLUOXETINE, 0.1),
                (VENLAFAXINE, 0.1), (BUPROPION, 0.05), (MIRTAZAPINE, 0.1)),
           _g(0.35, (ALPRAZOLAM, 0.6), (LORAZEPAM, 0.4)), _g(0.2, (ZOLPIDEM, 0.5), (TRAZODONE, 0.5))),
    items=(_p(PSYCHOTHERAPY, 0.9),),
    los=(20.0, 0.8), er_admit=0.3, followups=0.5,
)
OSTEOARTHRITIS = Reason(
    "osteoarthritis", (("M17.9", 0.5), ("M17.1", 0.3), ("M17.0", 0.2)), setting="primary", rx=0.7,
    days=(7, 30), drugs=(NSAID, GASTRO_PROTECT, _g(0.15, (GLUCOSAMINE, 1.0)), _g(0.2, (EPERISONE, 1.0))),
    items=(_p(XRAY_LIMB, 0.15), _p(HEAT_THERAPY, 0.6), _p(INTERFERENTIAL, 0.6), _p(JOINT_INJECTION, 0.25)),
    stay_items=(_p(KNEE_REPLACEMENT, 0.6), _p(REHABILITATION, 0.5, qty=(5, 10))),
    los=(12.0, 0.4), er_admit=0.2, followups=1.0,
)
CKD = Reason(
    "ckd", (("N18.3", 0.35), ("N18.4", 0.15), ("N18.5", 0.12), ("N18.9", 0.38)), setting="specialist",
    rx=0.9, days=CHRONIC_DAYS, drugs=(_g(0.6, (LOSARTAN, 0.5), (TELMISARTAN, 0.5)), _g(0.3, (SEVELAMER, 1.0)),
                   _g(0.3, (CALCITRIOL, 1.0)), _g(0.25, (FUROSEMIDE, 1.0))),
    items=(_p(CREATININE, 0.8), _p(CBC, 0.5), _p(URINALYSIS, 0.5), _p(EPO_INJECTION, 0.15)),
    stay_items=(_p(DIALYSIS, 0.3, qty=(2, 4)),), los=(9.0, 0.5), er_admit=0.5,
)
STROKE = Reason(
    "stroke", (("I63.9", 0.6), ("I63.5", 0.2), ("I69.3", 0.2)), setting="specialist", rx=0.95, days=CHRONIC_DAYS,
    drugs=(_g(0.9, (ASPIRIN, 0.35), (CLOPIDOGREL, 0.3), (CILOSTAZOL, 0.15), (APIXABAN, 0.1), (EDOXABAN, 0.1)),
           _g(0.7, (ATORVASTATIN, 0.6), (ROSUVASTATIN, 0.4)), _g(0.4, (CHOLINE_ALFOSCERATE, 1.0))),
    items=(_p(CHEMISTRY, 0.2), _p(CT, 0.03), _p(MRI, 0.02), _p(REHABILITATION, 0.3)),
    stay_items=(_p(MRI, 0.5), _p(THROMBECTOMY, 0.08), _p(REHABILITATION, 0.6, qty=(5, 20))),
    los=(18.0, 0.9), er_admit=0.7,
)
IHD = Reason(
    "ihd", (("I20.9", 0.35), ("I25.1", 0.3), ("I25.9", 0.2), ("I20.8", 0.15)), setting="specialist", rx=0.95,
    days=CHRONIC_DAYS,
    drugs=(_g(0.9, (ASPIRIN, 0.6), (CLOPIDOGREL, 0.3), (TICAGRELOR, 0.1)),
           _g(0.8, (ATORVASTATIN, 0.5), (ROSUVASTATIN, 0.5)),
           _g(0.35, (ISOSORBIDE, 0.5), (NICORANDIL, 0.5)), _g(0.3, (BISOPROLOL, 0.6), (CARVEDILOL, 0.4))),
    items=(_p(ECG, 0.4), _p(ECHOCARDIOGRAM, 0.05), _p(CHEMISTRY, 0.3), _p(LIPIDS, 0.2)),
    stay_items=(_p(PCI, 0.5), _p(ECHOCARDIOGRAM, 0.8)), los=(4.0, 0.6), er_admit=0.5,
)
BPH = Reason(
    "bph", (("N40", 1.0),), setting="specialist", rx=0.95, days=CHRONIC_DAYS,
    drugs=(_g(0.9, (TAMSULOSIN, 0.7), (SILODOSIN, 0.3)), _g(0.35, (FINASTERIDE, 0.4), (DUTASTERIDE, 0.6))),
    items=(_p(URINALYSIS, 0.3), _p(PSA, 0.15), _p(ULTRASOUND, 0.08)),
    stay_items=(_p(TURP, 0.6),), los=(4.0, 0.4), er_admit=0.2,
)
SURVEILLANCE_ITEMS = (_p(CBC, 0.7), _p(CHEMISTRY, 0.6), _p(TUMOUR_MARKER, 0.5), _p(CT, 0.2), _p(ULTRASOUND, 0.1))
CANCER_STAY = (_p(CANCER_SURGERY, 0.3), _p(IV_INJECTION, 0.9, qty=(3, 10)), _p(CT, 0.4))


def _cancer(name: str, codes: tuple[tuple[str, float], ...], rx: float, *drugs: DrugGroup) -> Reason:
    return Reason(name, codes, setting="cancer", rx=rx, drugs=drugs, days=(28, 90), items=SURVEILLANCE_ITEMS,
                  stay_items=CANCER_STAY, los=(7.0, 0.8), er_admit=0.6, copay="cancer")


def _chemo(cancer: Reason, *drugs: DrugGroup) -> Reason:
    return replace(cancer, name=f"{cancer.name}_chemotherapy", rx=1.0, drugs=(*drugs, ANTIEMETIC, STEROID),
                   days=(1, 1), items=(CHEMO_ADMINISTRATION, CBC, _p(CHEMISTRY, 0.9), _p(TUMOUR_MARKER, 0.3)),
                   in_house=True)


STOMACH_CANCER = _cancer("stomach_cancer", (("C16.9", 0.7), ("C16.3", 0.15), ("C16.2", 0.15)), 0.4,
                         _g(0.8, (ESOMEPRAZOLE, 0.6), (REBAMIPIDE, 0.4)))
COLORECTAL_CANCER = _cancer("colorectal_cancer", (("C18.9", 0.4), ("C18.7", 0.3), ("C20", 0.3)), 0.3,
                            _g(0.8, (PROBIOTIC, 0.5), (TRIMEBUTINE, 0.5)))
LUNG_CANCER = _cancer("lung_cancer", (("C34.9", 0.5), ("C34.1", 0.3), ("C34.3", 0.2)), 0.4,
                      _g(0.8, (ERDOSTEINE, 0.5), (ACETYLCYSTEINE, 0.5)), _g(0.3, (TRAMADOL_PARACETAMOL, 1.0)))
BREAST_CANCER = _cancer("breast_cancer", (("C50.9", 0.6), ("C50.4", 0.25), ("C50.2", 0.15)), 0.85,
                        _g(1.0, (TAMOXIFEN, 0.4), (LETROZOLE, 0.35), (ANASTROZOLE, 0.25)))
THYROID_CANCER = _cancer("thyroid_cancer", (("C73", 1.0),), 0.95, _g(1.0, (LEVOTHYROXINE, 1.0)))
PROSTATE_CANCER = _cancer("prostate_cancer", (("C61", 1.0),), 0.9,
                          _g(1.0, (BICALUTAMIDE, 0.7), (ENZALUTAMIDE, 0.3)), _g(0.3, (TAMSULOSIN, 1.0)))
PROSTATE_CANCER = replace(PROSTATE_CANCER, items=(*SURVEILLANCE_ITEMS[:2], _p(PSA, 0.9), _p(CT, 0.1)))
THYROID_CANCER = replace(THYROID_CANCER, items=(_p(TSH, 0.8), _p(ULTRASOUND, 0.2), _p(CBC, 0.2)))

STOMACH_CHEMO = _chemo(STOMACH_CANCER, _g(1.0, (OXALIPLATIN, 0.5), (DOCETAXEL, 0.2), (PACLITAXEL, 0.2),
                                          (NIVOLUMAB, 0.1)), _g(0.5, (CAPECITABINE, 0.6), (TEGAFUR, 0.4)))
COLORECTAL_CHEMO = _chemo(COLORECTAL_CANCER, _g(1.0, (OXALIPLATIN, 0.45), (IRINOTECAN, 0.25), (BEVACIZUMAB, 0.15),
                                                (FLUOROURACIL, 0.15)), _g(0.5, (CAPECITABINE, 1.0)))
LUNG_CHEMO = _chemo(LUNG_CANCER, _g(1.0, (PEMBROLIZUMAB, 0.35), (PEMETREXED, 0.2), (CARBOPLATIN, 0.15),
                                    (DOCETAXEL, 0.1), (OSIMERTINIB, 0.12), (GEFITINIB, 0.08)),
                    _g(0.3, (CISPLATIN, 1.0)))
BREAST_CHEMO = _chemo(BREAST_CANCER, _g(1.0, (TRASTUZUMAB, 0.3), (DOCETAXEL, 0.25), (PACLITAXEL, 0.2),
                                        (DOXORUBICIN, 0.15), (CYCLOPHOSPHAMIDE, 0.1)))
DIALYSIS_CARE = replace(CKD, name="dialysis", codes=(("N18.5", 1.0),), rx=0.6, days=(30, 30),
                        items=(DIALYSIS, CBC, CHEMISTRY, _p(EPO_INJECTION, 0.7)), copay="dialysis")

NEVER = (0.0,) * len(AGE_KNOTS)  # prevalence of a condition the other sex cannot have
CONDITIONS: dict[str, Condition] = {
    "hypertension": Condition(HYPERTENSION, (0, 0, .01, .05, .14, .27, .42, .55, .62, .64, .64),
                              (0, 0, .003, .015, .06, .18, .36, .55, .66, .68, .68),
                              metabolic=0.6, smoking=0.1, hazard=1.1, er=0.02, admit=0.02),
    "diabetes": Condition(DIABETES, (0, .0005, .003, .015, .05, .13, .22, .28, .28, .25, .25),
                          (0, .0005, .003, .01, .03, .07, .15, .24, .27, .24, .24),
                          metabolic=0.6, hazard=1.3, sporadic=0.3, er=0.04, admit=0.05),
    "dyslipidaemia": Condition(DYSLIPIDAEMIA, (0, 0, .005, .03, .08, .15, .22, .24, .2, .15, .15),
                               (0, 0, .003, .015, .05, .15, .3, .33, .26, .18, .18), metabolic=0.5),
    "asthma": Condition(ASTHMA, (.015, .04, .015, .012, .013, .017, .025, .04, .05, .05, .05),
                        (.01, .035, .016, .013, .015, .019, .028, .042, .05, .05, .05),
                        smoking=0.2, sporadic=1.0, er=0.05, admit=0.02),
    "copd": Condition(COPD, (0, 0, 0, 0, .001, .003, .01, .025, .045, .05, .05),
                      (0, 0, 0, 0, .0004, .001, .0035, .009, .016, .018, .018),
                      smoking=0.6, hazard=1.6, sporadic=1.0, er=0.2, admit=0.25),
    "stomach_cancer": Condition(STOMACH_CANCER, (0, 0, 0, .0003, .001, .003, .008, .013, .015, .012, .012),
                                (0, 0, 0, .0003, .0008, .0015, .004, .0065, .0075, .006, .006),
                                smoking=0.2, hazard=2.5, sporadic=0.5, er=0.2, admit=0.4),
    "colorectal_cancer": Condition(COLORECTAL_CANCER, (0, 0, 0, .0003, .001, .003, .006, .01, .012, .01, .01),
                                   (0, 0, 0, .0002, .0006, .0018, .0036, .006, .0072, .006, .006),
                                   metabolic=0.1, hazard=2.5, sporadic=0.5, er=0.2, admit=0.4),
    "lung_cancer": Condition(LUNG_CANCER, (0, 0, 0, .0001, .0003, .001, .004, .009, .012, .01, .01),
                             (0, 0, 0, .0001, .0002, .0005, .0018, .004, .0054, .0045, .0045),
                             smoking=0.6, hazard=5.0, sporadic=0.5, er=0.3, admit=0.5),
    "breast_cancer": Condition(BREAST_CANCER, (0, 0, 0, 0, .0001, .0002, .0002, .0001, .0001, 0, 0),
                               (0, 0, .0003, .003, .012, .018, .016, .01, .006, .004, .004),
                               hazard=1.5, sporadic=0.5, er=0.1, admit=0.4),
    "thyroid_cancer": Condition(THYROID_CANCER, (0, 0, .0005, .002, .004, .005, .0045, .003, .0015, .001, .001),
                                (0, 0, .002, .008, .015, .02, .018, .012, .006, .003, .003),
                                sporadic=0.2, admit=0.05),
    "prostate_cancer": Condition(PROSTATE_CANCER, (0, 0, 0, 0, .0002, .002, .01, .025, .035, .03, .03), NEVER,
                                 hazard=1.5, sporadic=0.3, er=0.1, admit=0.15),
    "depression": Condition(DEPRESSION, (0, .001, .015, .015, .013, .013, .015, .022, .025, .02, .02),
                            (0, .002, .03, .03, .025, .025, .03, .045, .05, .04, .04),
                            sporadic=0.3, er=0.02, admit=0.02),
    "osteoarthritis": Condition(OSTEOARTHRITIS, (0, 0, .0005, .0025, .015, .06, .12, .19, .21, .19, .19),
                                (0, 0, .001, .005, .03, .12, .25, .38, .42, .38, .38),
                                metabolic=0.1, sporadic=2.5, admit=0.05),
    "ckd": Condition(CKD, (0, .0005, .001, .002, .004, .008, .015, .03, .05, .06, .06),
                     (0, .0004, .0007, .0014, .003, .0056, .0105, .021, .035, .042, .042),
                     metabolic=0.5, hazard=2.0, sporadic=0.5, er=0.15, admit=0.25),
    "stroke": Condition(STROKE, (0, 0, 0, .001, .003, .008, .02, .04, .06, .06, .06),
                        (0, 0, 0, .0008, .0022, .006, .015, .03, .045, .045, .045),
                        metabolic=0.4, smoking=0.2, hazard=2.0, sporadic=0.5, er=0.15, admit=0.4),
    "ihd": Condition(IHD, (0, 0, 0, .002, .008, .022, .045, .07, .08, .07, .07),
                     (0, 0, 0, .0011, .0044, .012, .025, .0385, .044, .0385, .0385),
                     metabolic=0.45, smoking=0.3, hazard=1.5, sporadic=0.3, er=0.15, admit=0.15),
    "bph": Condition(BPH, (0, 0, 0, 0, .01, .06, .15, .25, .3, .3, .3), NEVER, sporadic=0.2, er=0.01, admit=0.02),
}
CONDITION_NAMES = tuple(CONDITIONS)
MONTHLY_TO_QUARTERLY = ((30, 0.25), (60, 0.3), (90, 0.45))
PROGRAMMES: tuple[Programme, ...] = (
    Programme("metabolic", ("diabetes", "hypertension", "dyslipidaemia"), MONTHLY_TO_QUARTERLY, band=(0.0, 0.92)),
    Programme("respiratory", ("copd", "asthma"), ((30, 0.4), (60, 0.3), (90, 0.3)), band=(0.0, 0.75)),
    Programme("depression", ("depression",), ((14, 0.25), (28, 0.45), (56, 0.3)), band=(0.0, 0.8)),
    Programme("ckd", ("ckd",), MONTHLY_TO_QUARTERLY),
    Programme("dialysis", ("ckd",), ((30, 1.0),), band=(0.0, 1.0), codes=("N18.5",), reason=DIALYSIS_CARE,
              jitter=0),
    Programme("stroke", ("stroke",), MONTHLY_TO_QUARTERLY),
    Programme("ihd", ("ihd",), MONTHLY_TO_QUARTERLY),
    Programme("bph", ("bph",), MONTHLY_TO_QUARTERLY, band=(0.0, 0.85)),
    Programme("stomach_chemotherapy", ("stomach_cancer",), ((21, 1.0),), band=(0.0, 0.3), reason=STOMACH_CHEMO,
              admit=2.5, jitter=2),
    Programme("stomach_follow_up", ("stomach_cancer",), ((90, 0.6), (180, 0.4)), band=(0.3, 1.0)),
    Programme("colorectal_chemotherapy", ("colorectal_cancer",), ((21, 1.0),), band=(0.0, 0.35),
              reason=COLORECTAL_CHEMO, admit=2.5, jitter=2),
    Programme("colorectal_follow_up", ("colorectal_cancer",), ((90, 0.6), (180, 0.4)), band=(0.35, 1.0)),
    Programme("lung_chemotherapy", ("lung_cancer",), ((21, 1.0),), band=(0.0, 0.5), reason=LUNG_CHEMO,
              admit=3.0, jitter=2),
    Programme("lung_follow_up", ("lung_cancer",), ((60, 0.5), (90, 0.5)), band=(0.5, 1.0)),
    Programme("breast_chemotherapy", ("breast_cancer",), ((21, 1.0),), band=(0.0, 0.3), reason=BREAST_CHEMO,
              admit=2.0, jitter=2),
    Programme("breast_follow_up", ("breast_cancer",), ((90, 0.6), (180, 0.4)), band=(0.3, 1.0)),
    Programme("thyroid_follow_up", ("thyroid_cancer",), ((90, 0.4), (180, 0.6)), band=(0.0, 1.0)),
    Programme("prostate_follow_up", ("prostate_cancer",), ((90, 0.7), (180, 0.3)), band=(0.0, 1.0)),
)

# ----- acute reasons
URI = Reason(
    "uri", (("J06.9", 0.5), ("J00", 0.15), ("J02.9", 0.15), ("J03.9", 0.08), ("J01.9", 0.12)), rx=0.9, days=(3, 5),
    drugs=(_g(0.4, (AMOXICILLIN, 0.45), (AMOX_CLAV, 0.35), (CEFACLOR, 0.15), (CLARITHROMYCIN, 0.05)), ANTIPYRETIC,
           _g(0.5, (CHLORPHENAMINE, 0.5), (CETIRIZINE, 0.3), (PSEUDOEPHEDRINE, 0.2)),
           _g(0.55, (AMBROXOL, 0.4), (ACETYLCYSTEINE, 0.3), (ERDOSTEINE, 0.2), (DEXTROMETHORPHAN, 0.1))),
    items=(_p(NEBULISER, 0.1), _p(IM_INJECTION, 0.05)),
    secondary=(("R50.9", 0.5), ("R05", 0.5)), secondary_prob=0.15, followups=0.4, er_admit=0.05,
)
BRONCHITIS = Reason(
    "bronchitis", (("J20.9", 0.8), ("J21.9", 0.2)), rx=0.9, days=(3, 7),
    drugs=(_g(0.5, (AMOX_CLAV, 0.5), (CLARITHROMYCIN, 0.3), (CEFIXIME, 0.2)), ANTIPYRETIC,
           _g(0.8, (AMBROXOL, 0.4), (ERDOSTEINE, 0.4), (ACETYLCYSTEINE, 0.2)), _g(0.3, (MONTELUKAST, 1.0))),
    items=(_p(XRAY_CHEST, 0.15), _p(NEBULISER, 0.2)),
    secondary=(("R05", 1.0),), secondary_prob=0.1, followups=0.5, los=(4.0, 0.4), er_admit=0.2,
)
PNEUMONIA = Reason(
    "pneumonia", (("J18.9", 0.7), ("J15.9", 0.15), ("J12.9", 0.15)), rx=0.9, days=(5, 7),
    drugs=(_g(1.0, (AMOX_CLAV, 0.4), (LEVOFLOXACIN, 0.3), (CEFIXIME, 0.3)), _g(0.5, (CLARITHROMYCIN, 1.0)),
           _g(0.6, (ERDOSTEINE, 0.5), (AMBROXOL, 0.5))),
    items=(_p(XRAY_CHEST, 0.9), _p(CBC, 0.6), _p(IV_INJECTION, 0.2)),
    stay_items=(_p(XRAY_CHEST, 0.9, qty=(1, 3)),), los=(8.0, 0.6), er_admit=0.5, followups=0.8,
)
INFLUENZA = Reason(
    "influenza", (("J11.1", 0.8), ("J10.1", 0.2)), rx=0.95, days=(3, 5),
    drugs=(_g(0.9, (OSELTAMIVIR, 1.0)), ANTIPYRETIC, _g(0.4, (AMBROXOL, 1.0))),
    items=(_p(INFLUENZA_TEST, 0.8), _p(IM_INJECTION, 0.1)), los=(4.0, 0.4), er_admit=0.08,
)
GASTROENTERITIS = Reason(
    "gastroenteritis", (("A09.0", 0.6), ("A09.9", 0.2), ("A08.4", 0.1), ("K52.9", 0.1)), rx=0.85, days=(3, 3),
    drugs=(_g(0.7, (DIOSMECTITE, 0.6), (PROBIOTIC, 0.4)), _g(0.6, (TRIMEBUTINE, 0.5), (DOMPERIDONE, 0.5)),
           _g(0.1, (CIPROFLOXACIN, 1.0))),
    items=(_p(IV_INJECTION, 0.08), _p(CBC, 0.05)),
    secondary=(("R11", 0.6), ("R10.4", 0.4)), secondary_prob=0.15, followups=0.3, los=(3.0, 0.4), er_admit=0.2,
)
GASTRITIS = Reason(
    "gastritis", (("K29.7", 0.4), ("K21.9", 0.3), ("K30", 0.3)), rx=0.95, days=(7, 28),
    drugs=(_g(0.8, (ESOMEPRAZOLE, 0.3), (OMEPRAZOLE, 0.2), (LANSOPRAZOLE, 0.2), (PANTOPRAZOLE, 0.1),
                (FAMOTIDINE, 0.2)), _g(0.5, (REBAMIPIDE, 0.6), (ITOPRIDE, 0.4)), _g(0.2, (DOMPERIDONE, 1.0))),
    items=(_p(ENDOSCOPY, 0.08),), followups=0.3, er_admit=0.05,
)
BACK_PAIN = Reason(
    "back_pain", (("M54.5", 0.45), ("M54.2", 0.2), ("M54.4", 0.1), ("M51.2", 0.15), ("M48.06", 0.1)),
    rx=0.7, days=(3, 14), drugs=(NSAID, _g(0.6, (EPERISONE, 0.7), (THIOCOLCHICOSIDE, 0.3)), GASTRO_PROTECT),
    items=(_p(HEAT_THERAPY, 0.7), _p(INTERFERENTIAL, 0.7), _p(NERVE_BLOCK, 0.1), _p(XRAY_SPINE, 0.2),
           _p(MRI, 0.01)),
    stay_items=(_p(SPINE_SURGERY, 0.25), _p(NERVE_BLOCK, 0.5, qty=(1, 3)), _p(MRI, 0.6)),
    los=(8.0, 0.5), followups=1.0, er_admit=0.1,
)
INJURY = Reason(
    "injury", (("S93.4", 0.2), ("S63.5", 0.1), ("S13.4", 0.12), ("S33.5", 0.12), ("S61.0", 0.1),
               ("S00.9", 0.06), ("S52.5", 0.08), ("S82.6", 0.05), ("S06.0", 0.05), ("S40.0", 0.12)),
    rx=0.6, days=(3, 7), drugs=(NSAID, _g(0.4, (EPERISONE, 1.0)), _g(0.2, (CEFADROXIL, 0.6), (MUPIROCIN, 0.4))),
    items=(_p(XRAY_LIMB, 0.6), _p(DRESSING, 0.2), _p(SPLINT, 0.15), _p(HEAT_THERAPY, 0.3)),
    stay_items=(_p(XRAY_LIMB, 1.0, qty=(1, 3)), _p(SPLINT, 0.5)),
    secondary=(("W01.9", 0.3), ("W19.9", 0.3), ("X59.9", 0.2), ("V49.9", 0.2)), secondary_prob=0.4,
    los=(6.0, 0.6), followups=0.8, er_admit=0.08,
)
HIP_FRACTURE = Reason(
    "hip_fracture", (("S72.0", 0.7), ("S72.1", 0.3)), setting="specialist", rx=0.8, days=(7, 14),
    drugs=(NSAID, GASTRO_PROTECT), items=(_p(XRAY_LIMB, 0.9), _p(REHABILITATION, 0.3)),
    stay_items=(_p(HIP_SURGERY, 0.85), _p(REHABILITATION, 0.7, qty=(5, 15)), _p(XRAY_LIMB, 1.0, qty=(2, 4))),
    secondary=(("W01.9", 0.6), ("W19.9", 0.4)), secondary_prob=0.5, los=(20.0, 0.5), er_admit=0.9,
    followups=1.0,
)
DENTAL = Reason(
    "dental", (("K02.1", 0.2), ("K04.0", 0.12), ("K05.1", 0.2), ("K05.3", 0.3), ("K08.8", 0.08), ("K04.7", 0.1)),
    setting="dental", rx=0.35, days=(3, 5),
    drugs=(_g(0.6, (AMOXICILLIN, 0.7), (AMOX_CLAV, 0.3)), _g(0.8, (IBUPROFEN, 0.6), (PARACETAMOL, 0.4)),
           _g(0.3, (CHLORHEXIDINE, 1.0))),
    items=(_p(XRAY_DENTAL, 0.5), _p(SCALING, 0.25), _p(FILLING, 0.2), _p(ROOT_CANAL, 0.15), _p(EXTRACTION, 0.1)),
    followups=0.6, er_admit=0.05,
)
RHINITIS = Reason(
    "allergic_rhinitis", (("J30.4", 0.7), ("J30.3", 0.2), ("J31.0", 0.1)), rx=0.9, days=(5, 14),
    drugs=(_g(0.9, (CETIRIZINE, 0.3), (LEVOCETIRIZINE, 0.3), (DESLORATADINE, 0.2), (FEXOFENADINE, 0.2)),
           _g(0.4, (MOMETASONE_NASAL, 0.5), (FLUTICASONE_NASAL, 0.5)), _g(0.3, (MONTELUKAST, 1.0))),
    followups=0.4,
)
DERMATITIS = Reason(
    "dermatitis", (("L30.9", 0.5), ("L20.9", 0.25), ("L50.9", 0.25)), rx=0.8, days=(5, 14),
    drugs=(_g(0.7, (BETAMETHASONE_SKIN, 0.5), (HYDROCORTISONE_SKIN, 0.35), (TACROLIMUS_SKIN, 0.15)),
           _g(0.6, (CETIRIZINE, 0.4), (LEVOCETIRIZINE, 0.3), (FEXOFENADINE, 0.3))),
    items=(_p(IM_INJECTION, 0.1),), followups=0.5,
)
EYE = Reason(
    "conjunctivitis", (("H10.9", 0.5), ("H10.1", 0.2), ("H04.1", 0.3)), rx=0.85, days=(5, 14),
    drugs=(_g(0.6, (LEVOFLOXACIN_EYE, 0.6), (OFLOXACIN_EYE, 0.4)), _g(0.5, (OLOPATADINE_EYE, 0.5),
                                                                     (HYALURONATE_EYE, 0.5))),
    followups=0.4,
)
UTI = Reason(
    "uti", (("N39.0", 0.85), ("N30.0", 0.15)), rx=0.95, days=(3, 7),
    drugs=(_g(1.0, (CIPROFLOXACIN, 0.35), (LEVOFLOXACIN, 0.25), (CEFUROXIME, 0.25), (NITROFURANTOIN, 0.15)),
           _g(0.3, (PHENAZOPYRIDINE, 1.0))),
    items=(_p(URINALYSIS, 0.9),), followups=0.3, los=(5.0, 0.4), er_admit=0.15,
)
GYNAECOLOGY = Reason(
    "gynaecology", (("N76.0", 0.45), ("N92.6", 0.3), ("N95.1", 0.25)), setting="obstetric", rx=0.7, days=(5, 28),
    drugs=(_g(0.5, (METRONIDAZOLE, 0.4), (FLUCONAZOLE, 0.3), (CLOTRIMAZOLE_VAGINAL, 0.3)),
           _g(0.3, (ESTRADIOL, 0.3), (TIBOLONE, 0.3), (MEDROXYPROGESTERONE, 0.4))),
    items=(_p(ULTRASOUND_PELVIC, 0.3), _p(URINALYSIS, 0.2)), followups=0.4,
)
HEADACHE = Reason(
    "headache", (("R51", 0.5), ("G43.9", 0.3), ("G44.2", 0.2)), rx=0.85, days=(3, 14),
    drugs=(_g(0.9, (PARACETAMOL, 0.3), (NAPROXEN, 0.25), (IBUPROFEN, 0.25), (SUMATRIPTAN, 0.2)),
           _g(0.2, (FLUNARIZINE, 1.0))),
    items=(_p(CT, 0.02),), followups=0.3, er_admit=0.1,
)
INSOMNIA = Reason(
    "insomnia", (("G47.0", 0.7), ("F51.0", 0.3)), setting="psychiatry", rx=0.95, days=(14, 28),
    drugs=(_g(0.9, (ZOLPIDEM, 0.5), (TRAZODONE, 0.3), (ALPRAZOLAM, 0.2)),), followups=0.8,
)
CATARACT = Reason(
    "cataract", (("H25.9", 0.6), ("H25.1", 0.4)), setting="specialist", rx=0.6, days=(14, 28),
    drugs=(_g(0.8, (PREDNISOLONE_EYE, 0.5), (LEVOFLOXACIN_EYE, 0.5)), _g(0.4, (HYALURONATE_EYE, 1.0))),
    stay_items=(CATARACT_SURGERY,), los=(1.0, 0.3), followups=1.0,
)
APPENDICITIS = Reason(
    "appendicitis", (("K35.8", 0.7), ("K35.3", 0.3)), setting="specialist", rx=0.5, days=(3, 5),
    drugs=(_g(1.0, (CEFUROXIME, 0.5), (AMOX_CLAV, 0.5)), ANTIPYRETIC),
    stay_items=(_p(APPENDECTOMY, 0.95), _p(CT, 0.8)), los=(4.0, 0.3), er_admit=0.95,
)
PRENATAL = Reason(
    "prenatal_care", (("Z34.9", 0.35), ("O26.8", 0.25), ("O21.0", 0.08), ("O20.0", 0.07), ("O24.4", 0.08),
                      ("O47.0", 0.07), ("O99.8", 0.1)), setting="obstetric", rx=0.2, days=(14, 30),
    drugs=(_g(0.8, (FERROUS, 0.7), (FOLIC_ACID, 0.3)), _g(0.2, (DOXYLAMINE_PYRIDOXINE, 1.0))),
    items=(_p(ULTRASOUND_PRENATAL, 0.5), _p(CBC, 0.2), _p(URINALYSIS, 0.3)), copay="pregnancy",
)
VAGINAL_BIRTH = Reason("vaginal_delivery", (("O80", 1.0),), setting="obstetric", stay_items=(VAGINAL_DELIVERY,),
                       los=(2.5, 0.2), copay="vaginal_delivery")
CAESAREAN = Reason("caesarean_delivery", (("O82.0", 0.6), ("O82.1", 0.4)), setting="obstetric",
                   stay_items=(CAESAREAN_SECTION,), los=(6.0, 0.2), copay="caesarean")
TERMINAL = Reason("terminal_care", (("J18.9", 0.25), ("I50.9", 0.2), ("A41.9", 0.15), ("I21.9", 0.1),
                                    ("I61.9", 0.1), ("N17.9", 0.08), ("J96.0", 0.12)), setting="specialist",
                  stay_items=(_p(CT, 0.4), _p(IV_INJECTION, 1.0, qty=(3, 20))), los=(12.0, 0.9))
CAESAREAN_SHARE = 0.55
TERMINAL_IN_HOSPITAL = 0.7

ACUTES: tuple[Acute, ...] = (
    Acute(URI, (2.4, 1.0, .52, .52, .45, .41, .41, .45, .52, .52, .52), emergency=0.02),
    Acute(BRONCHITIS, (.75, .3, .15, .15, .15, .15, .19, .22, .26, .26, .26), emergency=0.01),
    Acute(PNEUMONIA, (.06, .02, .005, .005, .006, .008, .012, .025, .05, .08, .08), emergency=0.2,
          inpatient=0.4),
    Acute(INFLUENZA, (.12, .12, .05, .04, .04, .03, .03, .03, .04, .05, .05), emergency=0.08),
    Acute(GASTROENTERITIS, (.38, .22, .15, .15, .11, .09, .09, .11, .15, .15, .15), emergency=0.1,
          inpatient=0.04),
    Acute(GASTRITIS, (0, .03, .15, .22, .26, .3, .3, .34, .3, .26, .26), emergency=0.01),
    Acute(BACK_PAIN, (0, .03, .12, .21, .27, .33, .36, .42, .45, .42, .42), emergency=0.01, inpatient=0.02),
    Acute(INJURY, (.15, .26, .26, .22, .19, .19, .19, .19, .19, .19, .19), emergency=0.2, inpatient=0.03),
    Acute(HIP_FRACTURE, (0, 0, 0, 0, 0, .0003, .001, .003, .01, .02, .02), female_ratio=1.8, emergency=0.9,
          inpatient=0.05),
    Acute(DENTAL, (.11, .41, .34, .38, .49, .56, .64, .68, .56, .38, .38)),
    Acute(RHINITIS, (.22, .45, .26, .22, .19, .15, .13, .11, .09, .075, .075)),
    Acute(DERMATITIS, (.3, .22, .19, .15, .13, .13, .15, .16, .19, .19, .19)),
    Acute(EYE, (.19, .11, .09, .09, .09, .11, .15, .19, .19, .15, .15)),
    Acute(UTI, (.003, .0045, .018, .018, .015, .015, .018, .022, .03, .03, .03), female_ratio=5.0,
          emergency=0.03),
    Acute(GYNAECOLOGY, (0, .015, .15, .19, .19, .15, .075, .038, .015, .0075, .0075), sex="F"),
    Acute(HEADACHE, (.015, .06, .11, .11, .1, .09, .075, .06, .06, .06, .06), female_ratio=1.8, emergency=0.05),
    Acute(INSOMNIA, (0, 0, .0075, .015, .022, .038, .052, .075, .09, .09, .09), female_ratio=1.4),
    Acute(CATARACT, (0, 0, 0, 0, .001, .005, .03, .08, .1, .08, .08), female_ratio=1.2, inpatient=0.25),
    Acute(APPENDICITIS, (.0005, .0015, .0015, .001, .0008, .0006, .0005, .0005, .0005, .0005, .0005),
          emergency=0.6, inpatient=0.35),
)
# age-specific fertility (deliveries per woman-year) at AGE_KNOTS, Korea 2023
FERTILITY = (0, 0, 0.008, 0.06, 0.01, 0.0003, 0, 0, 0, 0, 0)
FERTILITY_KNOTS = np.array([0, 15, 22.5, 32.5, 42.5, 47.5, 60, 70, 80, 90, 100], dtype=float)


def _all_reasons() -> tuple[Reason, ...]:
    reasons: list[Reason] = [c.reason for c in CONDITIONS.values()]
    reasons += [p.reason for p in PROGRAMMES if p.reason is not None]
    reasons += [a.reason for a in ACUTES]
    reasons += [PRENATAL, VAGINAL_BIRTH, CAESAREAN, TERMINAL]
    return tuple(dict.fromkeys(reasons))


REASONS = _all_reasons()
REASON_INDEX = {r.name: i for i, r in enumerate(REASONS)}
CODES = tuple(dict.fromkeys(c for r in REASONS for c, _ in (*r.codes, *r.secondary)))
CODE_INDEX = {c: i for i, c in enumerate(CODES)}
DRUGS = tuple(dict.fromkeys(d for r in REASONS for g in r.drugs for d, _ in g.options))
DRUG_INDEX = {d: i for i, d in enumerate(DRUGS)}


# ----------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class People:
    """Patient-level arrays (days are counted from 1970-01-01)."""

    age: np.ndarray
    male: np.ndarray
    birth: np.ndarray
    region: np.ndarray
    insurance: np.ndarray  # 0 employee, 1 self-employed, 2 medical aid
    decile: np.ndarray
    start: np.ndarray      # eligibility start
    end: np.ndarray        # eligibility end
    death: np.ndarray      # -1 when alive
    first: np.ndarray      # first day of the window they are covered
    frailty: np.ndarray    # multiplies rates of episodes
    conditions: np.ndarray  # (n, K) code index of each chronic condition, -1 if absent
    uniform: np.ndarray    # (n, K) per condition uniform that picks the programme


@dataclass(frozen=True)
class Visits:
    """Claims before they get ids: one entry per claim (patient-days are counted from 1970-01-01)."""

    pid: np.ndarray
    day: np.ndarray
    care: np.ndarray
    reason: np.ndarray
    code: np.ndarray
    cond: np.ndarray       # chronic condition the claim is for, -1 if none
    prog: np.ndarray       # programme of a regular visit, -1 if none
    inst: np.ndarray
    first: np.ndarray      # first visit of an episode
    los: np.ndarray
    days: np.ndarray       # days supplied by the visit's prescriptions

    def take(self, idx: np.ndarray) -> Visits:
        """The visits at ``idx``."""
        return Visits(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def __len__(self) -> int:
        return len(self.pid)


def _visits(pid: np.ndarray, day: np.ndarray, care: np.ndarray | int, reason: np.ndarray | int,
            code: np.ndarray, inst: np.ndarray, *, cond: np.ndarray | int = -1, prog: np.ndarray | int = -1,
            first: np.ndarray | bool = True, los: np.ndarray | int = 0, days: np.ndarray | int = 0) -> Visits:
    n = len(pid)

    def arr(x: np.ndarray | int | bool, dtype: type) -> np.ndarray:
        return np.broadcast_to(np.asarray(x, dtype=dtype), (n,)).copy()

    return Visits(pid=arr(pid, np.int64), day=arr(day, np.int64), care=arr(care, np.int64),
                  reason=arr(reason, np.int64), code=arr(code, np.int64), cond=arr(cond, np.int64),
                  prog=arr(prog, np.int64), inst=arr(inst, np.int64), first=arr(first, bool),
                  los=arr(los, np.int64), days=arr(days, np.int64))


def _concat(parts: list[Visits]) -> Visits:
    return Visits(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Visits)})


# ----------------------------------------------------------------------------------------- helpers


def _check_params(n_patients: object, seed: object, reference_date: object) -> None:
    problems = []
    if isinstance(n_patients, bool) or not isinstance(n_patients, Integral) or n_patients < 1:
        problems.append(f"The 'n_patients' parameter of simulate must be an int >= 1; got {n_patients!r} instead.")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        problems.append(f"The 'seed' parameter of simulate must be an int >= 0; got {seed!r} instead.")
    if (not isinstance(reference_date, dt.date) or isinstance(reference_date, dt.datetime)
            or not MIN_REFERENCE <= reference_date <= MAX_REFERENCE):
        problems.append(
            f"The 'reference_date' parameter of simulate must be a datetime.date between {MIN_REFERENCE} and "
            f"{MAX_REFERENCE}; got {reference_date!r} instead."
        )
    if problems:
        raise ValueError(" ".join(problems))


def _interp(age: np.ndarray, values: tuple[float, ...], knots: np.ndarray = AGE_KNOTS) -> np.ndarray:
    return np.interp(age, knots, np.asarray(values, dtype=float))


def _weights(pairs: tuple[tuple[object, float], ...]) -> np.ndarray:
    w = np.array([p for _, p in pairs], dtype=float)
    return w / w.sum()


def _group_index(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., c-1 for every group of ``counts`` rows laid end to end."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - starts


def _lookup(table: tuple[tuple[str, float], ...]) -> np.ndarray:
    return np.array([CODE_INDEX[c] for c, _ in table], dtype=np.int64)


def _draw_codes(rng: np.random.Generator, n: int, table: tuple[tuple[str, float], ...]) -> np.ndarray:
    return _lookup(table)[rng.choice(len(table), size=n, p=_weights(table))]


def _institutions(rng: np.random.Generator, setting: np.ndarray, care: np.ndarray) -> np.ndarray:
    """Institution type of each visit from its setting (index into SETTINGS) and care type."""
    inst = np.full(len(setting), CLINIC, dtype=np.int64)
    for s, name in enumerate(SETTINGS):
        for c in (INPATIENT, OUTPATIENT, EMERGENCY):
            mask = (setting == s) & (care == c)
            if mask.any():
                probs = EMERGENCY_PROBS if c == EMERGENCY else INSTITUTION_PROBS[(name, c)]
                inst[mask] = rng.choice(len(INSTITUTIONS), size=int(mask.sum()), p=probs)
    return inst


REASON_SETTING = np.array([SETTINGS.index(r.setting) for r in REASONS], dtype=np.int64)
CONDITION_REASON = np.array([REASON_INDEX[c.reason.name] for c in CONDITIONS.values()], dtype=np.int64)


def _lognormal_days(rng: np.random.Generator, reasons: np.ndarray) -> np.ndarray:
    median = np.array([r.los[0] for r in REASONS])[reasons]
    sigma = np.array([r.los[1] for r in REASONS])[reasons]
    days = np.round(median * np.exp(sigma * rng.standard_normal(len(reasons))))
    return np.clip(days, 1, 365).astype(np.int64)


# ----------------------------------------------------------------------------------------- people


def _people(rng: np.random.Generator, n: int, ref_day: int, window_start: int) -> People:
    group = rng.choice(len(AGE_GROUP_POPULATION), size=n, p=_weights(tuple(enumerate(AGE_GROUP_POPULATION))))
    width = np.where(group == len(AGE_GROUP_POPULATION) - 1, 6, 5)
    age = group * 5 + np.floor(rng.random(n) * width).astype(np.int64)
    male = rng.random(n) < _interp(age, MALE_SHARE)
    birth = ref_day - np.floor((age + rng.random(n)) * 365.25).astype(np.int64)
    birth = np.maximum(birth, FLOOR_BIRTH)
    region = rng.choice(len(REGIONS), size=n, p=_weights(tuple(enumerate(REGION_POPULATION))))
    aid = rng.random(n) < _interp(age, MEDICAL_AID_SHARE)
    insurance = np.where(aid, 2, np.where(rng.random(n) < EMPLOYEE_SHARE, 0, 1))
    decile = np.where(aid, 0, rng.integers(1, 11, size=n))

    # eligibility start: birth, an entry during the window, or the last change of eligibility
    entrant = (rng.random(n) < ENTRANT_SHARE) & (birth < window_start)
    entry = window_start + np.floor(rng.random(n) * (ref_day - window_start + 1)).astype(np.int64)
    change = window_start - np.floor(rng.exponential(COVERED_YEARS * 365.25, size=n)).astype(np.int64)
    start = np.where(entrant, entry, np.maximum(birth, change))
    first = np.maximum(start, window_start)

    conditions, uniform, hazard = _conditions(rng, age, male)

    # deaths (Gompertz hazard, raised by conditions) and emigration inside the window
    q = np.clip(np.exp(-11.0 + 0.094 * age), 0.0, 0.6)
    q = np.where(age == 0, np.maximum(q, 0.0025), q) * np.where(male, 1.35, 0.75)
    rate = -np.log1p(-np.clip(q * hazard, 0.0, 0.95))
    years = (ref_day - first + 1) / 365.25
    dies = rng.random(n) < -np.expm1(-rate * years)
    leaves = ~dies & (rng.random(n) < -np.expm1(-EMIGRATION_RATE * years))
    when = first + np.floor(rng.random(n) * (ref_day - first + 1)).astype(np.int64)
    death = np.where(dies, when, -1)
    end = np.where(dies | leaves, when, ref_day)
    frailty = rng.gamma(2.0, 0.5, size=n)
    return People(age=age, male=male, birth=birth, region=region, insurance=insurance, decile=decile,
                  start=start, end=end, death=death, first=first, frailty=frailty, conditions=conditions,
                  uniform=uniform)


def _conditions(rng: np.random.Generator, age: np.ndarray, male: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code of each chronic condition (-1 if absent), per-condition uniforms and mortality hazard ratios.

    Conditions share two latent factors (metabolic, smoking) in a Gaussian copula, so they co-occur
    while each keeps its prevalence by age and sex.
    """
    n = len(age)
    latent = rng.standard_normal((n, 2))
    noise = rng.standard_normal((n, len(CONDITIONS)))
    codes = np.full((n, len(CONDITIONS)), -1, dtype=np.int64)
    hazard = np.ones(n)
    for k, cond in enumerate(CONDITIONS.values()):
        prevalence = np.where(male, _interp(age, cond.male), _interp(age, cond.female))
        load = np.array([cond.metabolic, cond.smoking])
        score = latent @ load + np.sqrt(1.0 - load @ load) * noise[:, k]
        has = score > ndtri(1.0 - np.clip(prevalence, 0.0, 1.0))
        codes[has, k] = _draw_codes(rng, int(has.sum()), cond.reason.codes)
        hazard = np.where(has, hazard * cond.hazard, hazard)
    return codes, rng.random((n, len(CONDITIONS))), hazard


# ----------------------------------------------------------------------------------------- visits


def _spread(rng: np.random.Generator, units: np.ndarray, start: np.ndarray, end: np.ndarray, rate: np.ndarray,
            followups: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Poisson episodes of each unit between its start and end, with return visits 2-5 days apart.

    Returns (unit, day, episode, first visit of its episode) of every visit.
    """
    count = rng.poisson(rate * (end - start + 1) / 365.25)
    episode_unit = np.repeat(units, count)
    episode_end = np.repeat(end, count)
    span = np.repeat(end - start + 1, count)
    day0 = np.repeat(start, count) + np.floor(rng.random(len(episode_unit)) * span).astype(np.int64)
    per = 1 + (rng.poisson(followups, size=len(episode_unit)) if followups > 0 else 0)
    per = np.broadcast_to(per, (len(episode_unit),))
    episode = np.repeat(np.arange(len(episode_unit)), per)
    k = _group_index(per)
    gaps = np.where(k == 0, 0, rng.integers(2, 6, size=len(k)))
    day = day0[episode] + _group_cumsum(gaps, per)
    keep = day <= episode_end[episode]
    return episode_unit[episode][keep], day[keep], episode[keep], (k == 0)[keep]


def _group_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Running sums of ``values`` restarting at every group of ``counts`` rows."""
    total = np.cumsum(values)
    before = np.concatenate([[0], total])[np.cumsum(counts) - counts]
    return total - np.repeat(before, counts)


def _programme_visits(rng: np.random.Generator, people: People) -> Visits:
    """Regular visits (and the admissions) of every treatment programme, each patient at one institution."""
    parts = []
    for g, prog in enumerate(PROGRAMMES):
        ks = [CONDITION_NAMES.index(c) for c in prog.conditions]
        has = people.conditions[:, ks] >= 0
        if prog.codes:
            allowed = np.isin(people.conditions[:, ks], [CODE_INDEX[c] for c in prog.codes])
            has &= allowed
        member = has.any(axis=1)
        main_pos = np.argmax(has, axis=1)
        main = np.array(ks)[main_pos]
        u = people.uniform[np.arange(len(main)), main]
        pids = np.flatnonzero(member & (u >= prog.band[0]) & (u < prog.band[1]))
        if len(pids) == 0:
            continue
        main = main[pids]
        intervals = np.array([d for d, _ in prog.intervals])
        interval = intervals[rng.choice(len(intervals), size=len(pids), p=_weights(prog.intervals))]
        start, end = people.first[pids], people.end[pids]
        phase = np.floor(rng.random(len(pids)) * interval).astype(np.int64)
        span = end - start
        count = np.where(span >= phase, (span - phase) // interval + 1, 0)
        unit = np.repeat(np.arange(len(pids)), count)
        k = _group_index(count)
        jitter = rng.integers(-prog.jitter, prog.jitter + 1, size=len(unit))
        day = np.clip(start[unit] + phase[unit] + k * interval[unit] + jitter, start[unit], end[unit])
        if prog.reason is not None:
            reason = np.full(len(pids), REASON_INDEX[prog.reason.name])
        else:
            reason = CONDITION_REASON[main]
        inst = _institutions(rng, REASON_SETTING[reason], np.full(len(pids), OUTPATIENT))
        code = people.conditions[pids, main]
        parts.append(_visits(pids[unit], day, OUTPATIENT, reason[unit], code[unit], inst[unit], cond=main[unit],
                             prog=g, first=False, days=interval[unit]))
        if prog.admit > 0:
            a_unit, a_day, _, _ = _spread(rng, np.arange(len(pids)), start, end, np.full(len(pids), prog.admit), 0.0)
            a_inst = _institutions(rng, REASON_SETTING[reason[a_unit]], np.full(len(a_unit), INPATIENT))
            parts.append(_visits(pids[a_unit], a_day, INPATIENT, reason[a_unit], code[a_unit], a_inst,
                                 cond=main[a_unit]))
    return _concat(parts) if parts else _empty_visits()


def _empty_visits() -> Visits:
    e = np.zeros(0, dtype=np.int64)
    return _visits(e, e, e, e, e, e)


def _condition_visits(rng: np.random.Generator, people: People) -> Visits:
    """Sporadic outpatient episodes, emergency visits and admissions of chronic patients."""
    parts = []
    old = np.select([people.age >= 80, people.age >= 65], [2.0, 1.5], default=1.0)
    for k, cond in enumerate(CONDITIONS.values()):
        pids = np.flatnonzero(people.conditions[:, k] >= 0)
        if len(pids) == 0:
            continue
        reason = REASON_INDEX[cond.reason.name]
        setting = REASON_SETTING[reason]
        start, end, frail = people.first[pids], people.end[pids], people.frailty[pids]
        for care, rate, followups in ((OUTPATIENT, cond.sporadic, cond.reason.followups),
                                      (EMERGENCY, cond.er, 0.0), (INPATIENT, cond.admit, 0.0)):
            if rate <= 0:
                continue
            scale = frail if care == OUTPATIENT else old[pids]
            unit, day, episode, first = _spread(rng, np.arange(len(pids)), start, end, rate * scale, followups)
            n_ep = int(episode.max()) + 1 if len(episode) else 0
            inst = _institutions(rng, np.full(n_ep, setting), np.full(n_ep, care))[episode]
            parts.append(_visits(pids[unit], day, care, reason, people.conditions[pids[unit], k], inst, cond=k,
                                 first=first))
    return _concat(parts) if parts else _empty_visits()


def _acute_visits(rng: np.random.Generator, people: People) -> Visits:
    """Acute episodes by age and sex: first seen at a clinic, in the emergency room or admitted."""
    parts = []
    n = len(people.age)
    for acute in ACUTES:
        rate = _interp(people.age, acute.rate) * np.where(people.male, 1.0, acute.female_ratio) * people.frailty
        if acute.sex is not None:
            rate = np.where(people.male == (acute.sex == "M"), rate, 0.0)
        reason = REASON_INDEX[acute.reason.name]
        unit, day, episode, first = _spread(rng, np.arange(n), people.first, people.end, rate,
                                            acute.reason.followups)
        # where an episode is first seen; follow-ups of emergency and admitted episodes are outpatient
        n_ep = int(episode.max()) + 1 if len(episode) else 0
        u = rng.random(n_ep)
        ep_care = np.where(u < acute.emergency, EMERGENCY,
                           np.where(u < acute.emergency + acute.inpatient, INPATIENT, OUTPATIENT))
        care = np.where(first, ep_care[episode], OUTPATIENT)
        ep_inst = _institutions(rng, np.full(n_ep, REASON_SETTING[reason]), ep_care)
        ep_clinic = _institutions(rng, np.full(n_ep, REASON_SETTING[reason]), np.full(n_ep, OUTPATIENT))
        inst = np.where(first | (ep_care[episode] == OUTPATIENT), ep_inst[episode], ep_clinic[episode])
        ep_code = _draw_codes(rng, n_ep, acute.reason.codes)
        parts.append(_visits(unit, day, care, reason, ep_code[episode], inst, first=first))
    return _concat(parts) if parts else _empty_visits()


def _pregnancy_visits(rng: np.random.Generator, people: People, window_start: int, ref_day: int) -> Visits:
    """Prenatal visits every four weeks from week 6 and the delivery, for women giving birth near the window."""
    horizon = ref_day + 280
    age_at_delivery = people.age.astype(float) + 0.5
    p = _interp(age_at_delivery, FERTILITY, FERTILITY_KNOTS) * (horizon - window_start + 1) / 365.25
    mothers = np.flatnonzero(~people.male & (rng.random(len(p)) < p))
    delivery = window_start + np.floor(rng.random(len(mothers)) * (horizon - window_start + 1)).astype(np.int64)
    n_visits = 9
    unit = np.repeat(np.arange(len(mothers)), n_visits)
    k = np.tile(np.arange(n_visits), len(mothers))
    day = delivery[unit] - 238 + 28 * k + rng.integers(-3, 4, size=len(unit))
    pid = mothers[unit]
    keep = (day >= people.first[pid]) & (day <= people.end[pid])
    inst = _institutions(rng, np.full(len(mothers), SETTINGS.index("obstetric")), np.full(len(mothers), OUTPATIENT))
    prenatal = _visits(pid[keep], day[keep], OUTPATIENT, REASON_INDEX[PRENATAL.name],
                       _draw_codes(rng, int(keep.sum()), PRENATAL.codes), inst[unit][keep], first=k[keep] == 0)
    born = (delivery >= people.first[mothers]) & (delivery <= people.end[mothers])
    caesarean = rng.random(len(mothers)) < CAESAREAN_SHARE
    reason = np.where(caesarean, REASON_INDEX[CAESAREAN.name], REASON_INDEX[VAGINAL_BIRTH.name])
    code = np.where(caesarean, _draw_codes(rng, len(mothers), CAESAREAN.codes), CODE_INDEX["O80"])
    birth_inst = _institutions(rng, np.full(len(mothers), SETTINGS.index("obstetric")),
                               np.full(len(mothers), INPATIENT))
    deliveries = _visits(mothers[born], delivery[born], INPATIENT, reason[born], code[born], birth_inst[born])
    return _concat([prenatal, deliveries])


def _terminal_visits(rng: np.random.Generator, people: People) -> Visits:
    """Admissions ending at death for most of those who die (Korea: about 70 % die in hospital)."""
    dead = np.flatnonzero((people.death >= 0) & (rng.random(len(people.age)) < TERMINAL_IN_HOSPITAL))
    reason = REASON_INDEX[TERMINAL.name]
    stay = _lognormal_days(rng, np.full(len(dead), reason))
    day = np.maximum(people.death[dead] - stay + 1, people.first[dead])
    los = people.death[dead] - day + 1
    code = _draw_codes(rng, len(dead), TERMINAL.codes)
    cond = np.full(len(dead), -1)
    cancers = [CONDITION_NAMES.index(c) for c in CONDITION_NAMES if c.endswith("_cancer")]
    for k in cancers:  # a cancer is the cause of death where there is one
        has = people.conditions[dead, k] >= 0
        code = np.where(has, people.conditions[dead, k], code)
        cond = np.where(has, k, cond)
    inst = _institutions(rng, np.full(len(dead), REASON_SETTING[reason]), np.full(len(dead), INPATIENT))
    return _visits(dead, day, INPATIENT, reason, code, inst, cond=cond, los=los)


def _admissions_from_emergency(rng: np.random.Generator, visits: Visits) -> Visits:
    er_admit = np.array([r.er_admit for r in REASONS])
    idx = np.flatnonzero((visits.care == EMERGENCY) & (rng.random(len(visits)) < er_admit[visits.reason]))
    admitted = visits.take(idx)
    return replace(admitted, care=np.full(len(idx), INPATIENT), first=np.zeros(len(idx), bool))


def _stays(rng: np.random.Generator, visits: Visits, people: People) -> np.ndarray:
    """Length of stay of admissions (1..365 days, ending by death), 0 for other claims."""
    inpatient = visits.care == INPATIENT
    los = np.where(visits.los > 0, visits.los, _lognormal_days(rng, visits.reason))
    death = people.death[visits.pid]
    los = np.where(death >= 0, np.minimum(los, death - visits.day + 1), los)
    return np.where(inpatient, np.clip(los, 1, 365), 0)


# ----------------------------------------------------------------------------------------- diagnoses


def _diagnosis_matrix(rng: np.random.Generator, visits: Visits, people: People) -> np.ndarray:
    """(E, 2 + K) code indices per visit: main, reason's secondary code, comorbidities; -1 = not recorded."""
    n = len(visits)
    cond_codes = people.conditions[visits.pid]  # (E, K)
    prog_mask = np.zeros((len(PROGRAMMES) + 1, len(CONDITIONS)), dtype=bool)
    for g, prog in enumerate(PROGRAMMES):
        if prog.reason is None:
            prog_mask[g, [CONDITION_NAMES.index(c) for c in prog.conditions]] = True
    covered = prog_mask[visits.prog] & (cond_codes >= 0)
    record = np.select(
        [visits.care == INPATIENT, visits.care == EMERGENCY, visits.prog >= 0],
        [np.full(n, 0.8), np.full(n, 0.5), np.full(n, 0.5)], default=0.25,
    )
    keep = (cond_codes >= 0) & (covered | (rng.random(cond_codes.shape) < record[:, None]))
    if n:
        keep[np.arange(n)[visits.cond >= 0], visits.cond[visits.cond >= 0]] = False
    secondary = np.full(n, -1, dtype=np.int64)
    for r, reason in enumerate(REASONS):
        if not reason.secondary:
            continue
        idx = np.flatnonzero((visits.reason == r) & (rng.random(n) < reason.secondary_prob))
        secondary[idx] = _draw_codes(rng, len(idx), reason.secondary)
    return np.column_stack([visits.code, secondary, np.where(keep, cond_codes, -1)])


MAX_DIAGNOSES = 6


def _compact(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, seq, code) of the recorded entries of each row, in column order, at most MAX_DIAGNOSES."""
    present = matrix >= 0
    seq = np.cumsum(present, axis=1)
    rows, cols = np.nonzero(present & (seq <= MAX_DIAGNOSES))
    return rows, seq[rows, cols], matrix[rows, cols]


# ----------------------------------------------------------------------------------------- drugs


def _draw_drugs(rng: np.random.Generator, n: int, groups: tuple[DrugGroup, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(unit, drug index) rows: each group joins with its probability, every unit gets one group at least."""
    if n == 0 or not groups:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    take = rng.random((n, len(groups))) < np.array([g.prob for g in groups])
    none = ~take.any(axis=1)
    fallback = rng.choice(len(groups), size=n, p=_weights(tuple((g, g.prob) for g in groups)))
    take[np.flatnonzero(none), fallback[none]] = True
    units, drugs = [], []
    for j, group in enumerate(groups):
        u = np.flatnonzero(take[:, j])
        options = np.array([DRUG_INDEX[d] for d, _ in group.options])
        units.append(u)
        drugs.append(options[rng.choice(len(options), size=len(u), p=_weights(group.options))])
    unit, drug = np.concatenate(units), np.concatenate(drugs)
    order = np.argsort(unit, kind="stable")
    return unit[order], drug[order]


DOSE_COUNT = np.array([len(d.doses) for d in DRUGS])
DOSE_TABLE = np.array([[*d.doses, *([d.doses[0]] * (DOSE_COUNT.max() - len(d.doses)))] for d in DRUGS])
DRUG_PRICE = np.array([d.price for d in DRUGS])
DRUG_DAYS = np.array([d.days or 0 for d in DRUGS])


def _doses(rng: np.random.Generator, drug: np.ndarray) -> np.ndarray:
    """A usual daily dose of each drug, uniformly among its doses."""
    pick = np.floor(rng.random(len(drug)) * DOSE_COUNT[drug]).astype(np.int64)
    return DOSE_TABLE[drug, pick]


def _prescriptions(rng: np.random.Generator, visits: Visits, people: People, rx: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(visit, drug, daily dose) of the prescriptions written at the visits flagged ``rx``.

    Programme visits repeat each patient's regimen of every condition the programme covers; other
    visits draw their drugs afresh.
    """
    rows_v, rows_d, rows_q = [], [], []
    regular = rx & (visits.prog >= 0)
    # requests (visit, reason) for regimens: the programme's own reason or each covered condition
    req_v, req_r = [], []
    for g, prog in enumerate(PROGRAMMES):
        vs = np.flatnonzero(regular & (visits.prog == g))
        if prog.reason is not None:
            req_v.append(vs)
            req_r.append(np.full(len(vs), REASON_INDEX[prog.reason.name]))
            continue
        for c in prog.conditions:
            k = CONDITION_NAMES.index(c)
            has = vs[people.conditions[visits.pid[vs], k] >= 0]
            req_v.append(has)
            req_r.append(np.full(len(has), REASON_INDEX[CONDITIONS[c].reason.name]))
    req_v_all = np.concatenate(req_v) if req_v else np.zeros(0, np.int64)
    req_r_all = np.concatenate(req_r) if req_r else np.zeros(0, np.int64)
    for r in np.unique(req_r_all):
        vs = req_v_all[req_r_all == r]
        patients, inverse = np.unique(visits.pid[vs], return_inverse=True)
        unit, drug = _draw_drugs(rng, len(patients), REASONS[r].drugs)
        dose = _doses(rng, drug)
        starts = np.searchsorted(unit, np.arange(len(patients)))
        counts = np.bincount(unit, minlength=len(patients))
        per_visit = counts[inverse]
        row = np.repeat(starts[inverse], per_visit) + _group_index(per_visit)
        rows_v.append(np.repeat(vs, per_visit))
        rows_d.append(drug[row])
        rows_q.append(dose[row])
    sporadic = rx & (visits.prog < 0)
    for r, reason in enumerate(REASONS):
        vs = np.flatnonzero(sporadic & (visits.reason == r))
        unit, drug = _draw_drugs(rng, len(vs), reason.drugs)
        rows_v.append(vs[unit])
        rows_d.append(drug)
        rows_q.append(_doses(rng, drug))
    if not rows_v:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0)
    return np.concatenate(rows_v), np.concatenate(rows_d), np.concatenate(rows_q)


# ----------------------------------------------------------------------------------------- details


@dataclass(frozen=True)
class Lines:
    """Detail lines before they get ids."""

    claim: np.ndarray
    category: np.ndarray
    code: np.ndarray
    quantity: np.ndarray
    price: np.ndarray


CATEGORIES = ("consultation", "procedure", "lab", "imaging", "injection", "room", "dispensing")


def _item_codes() -> tuple[str, ...]:
    codes: list[str] = []
    items = [*EMERGENCY_ITEMS, *STAY_ITEMS]
    for r in REASONS:
        items += [*r.items, *r.stay_items]
    codes += [i.code for i in items]
    for pair in CONSULTATION.values():
        codes += [pair[0][0], pair[1][0]]
    codes += ["V1100", "AB220", *(c for c, _ in PHARMACY_FEES), *(c for _, c, _ in DISPENSING_BY_DAYS)]
    return tuple(dict.fromkeys(codes))


ITEM_CODES = _item_codes()


def _item_lines(rng: np.random.Generator, claims: np.ndarray, inst: np.ndarray, item: Item) -> Lines:
    """Lines of ``item`` for the claims that get it (chance ``item.prob``), priced at each institution."""
    chosen = claims[rng.random(len(claims)) < item.prob]
    n = len(chosen)
    qty = rng.integers(item.qty[0], item.qty[1] + 1, size=n).astype(float)
    price = item.price * INSTITUTION_MARGIN[inst[chosen]]
    if item.sigma > 0:
        price = price * np.exp(item.sigma * rng.standard_normal(n) - item.sigma**2 / 2)
    return Lines(chosen, np.full(n, CATEGORIES.index(item.category)), np.full(n, ITEM_CODES.index(item.code)),
                 qty, np.round(price))


def _details(rng: np.random.Generator, claims: Visits) -> Lines:
    """Fee-schedule lines of every claim: base fees by care type, then the reason's optional items."""
    n = len(claims)
    idx = np.arange(n)
    codes = ITEM_CODES
    parts: list[Lines] = []

    # consultation of outpatient visits
    out = idx[claims.care == OUTPATIENT]
    for inst, ((c1, p1), (c2, p2)) in CONSULTATION.items():
        sel = out[claims.inst[out] == inst]
        first = claims.first[sel]
        parts.append(Lines(sel, np.full(len(sel), CATEGORIES.index("consultation")),
                           np.where(first, codes.index(c1), codes.index(c2)), np.ones(len(sel)),
                           np.where(first, p1, p2).astype(float)))
    # emergency management fee and the usual work-up
    er = idx[claims.care == EMERGENCY]
    fee = np.array([EMERGENCY_FEE.get(i, 0) for i in range(len(INSTITUTIONS))], dtype=float)
    parts.append(Lines(er, np.full(len(er), CATEGORIES.index("consultation")), np.full(len(er), codes.index("V1100")),
                       np.ones(len(er)), fee[claims.inst[er]]))
    for item in EMERGENCY_ITEMS:
        parts.append(_item_lines(rng, er, claims.inst, item))
    # ward fee per day and the usual inpatient work-up
    stay = idx[claims.care == INPATIENT]
    ward = np.array([WARD_FEE.get(i, 0) for i in range(len(INSTITUTIONS))], dtype=float)
    los = claims.los[stay].astype(float)
    parts.append(Lines(stay, np.full(len(stay), CATEGORIES.index("room")), np.full(len(stay), codes.index("AB220")),
                       los, ward[claims.inst[stay]]))
    for item in STAY_ITEMS:
        parts.append(_item_lines(rng, stay, claims.inst, item))
    inj = _item_lines(rng, stay, claims.inst, _p(IV_INJECTION, 0.9))
    parts.append(replace(inj, quantity=claims.los[inj.claim].astype(float)))
    # pharmacy fees by days supplied
    ph = idx[claims.care == PHARMACY]
    for code, price in PHARMACY_FEES:
        parts.append(Lines(ph, np.full(len(ph), CATEGORIES.index("dispensing")), np.full(len(ph), codes.index(code)),
                           np.ones(len(ph)), np.full(len(ph), float(price))))
    limits = np.array([d for d, _, _ in DISPENSING_BY_DAYS])
    band = np.minimum(np.searchsorted(limits, claims.days[ph]), len(limits) - 1)
    parts.append(Lines(ph, np.full(len(ph), CATEGORIES.index("dispensing")),
                       np.array([codes.index(c) for _, c, _ in DISPENSING_BY_DAYS])[band], np.ones(len(ph)),
                       np.array([float(p) for _, _, p in DISPENSING_BY_DAYS])[band]))
    # items of the reason
    visit = (claims.care == OUTPATIENT) | (claims.care == EMERGENCY)
    for r, reason in enumerate(REASONS):
        of_reason = claims.reason == r
        for items, mask in ((reason.items, visit), (reason.stay_items, claims.care == INPATIENT)):
            sel = idx[of_reason & mask]
            for item in items:
                parts.append(_item_lines(rng, sel, claims.inst, item))
    return Lines(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Lines)))


# ----------------------------------------------------------------------------------------- costs


def _patient_share(claims: Visits, total: np.ndarray, age: np.ndarray, insurance: np.ndarray) -> np.ndarray:
    """What the patient pays under national insurance rules (KRW), never more than the total."""
    care, inst = claims.care, claims.inst
    copay = np.array([r.copay for r in REASONS])[claims.reason]
    outpatient_rate = np.array([0.6, 0.5, 0.4, 0.3, 0.3, 0.3])[inst]
    pregnancy_rate = np.array([0.4, 0.3, 0.2, 0.1, 0.3, 0.1])[inst]
    rate = np.select(
        [copay == "cancer", copay == "dialysis", copay == "vaginal_delivery", copay == "caesarean",
         care == INPATIENT, (copay == "pregnancy") & (care == OUTPATIENT), care == PHARMACY],
        [0.05, 0.1, 0.0, 0.05, np.where(age < 15, 0.05, 0.2), pregnancy_rate, 0.3],
        default=outpatient_rate,
    )
    standard = copay == "standard"
    ambulatory = (care == OUTPATIENT) | (care == PHARMACY)
    rate = np.where(standard & ambulatory & (age < 6), rate * 0.7, rate)
    rate = np.where(standard & (care == OUTPATIENT) & (age < 1), 0.05, rate)
    share = np.floor(total * rate / 100.0) * 100.0
    # elderly flat fees at clinics (15,000 KRW or less) and pharmacies (10,000 KRW or less)
    elderly = standard & (age >= 65)
    clinic = elderly & (care == OUTPATIENT) & (inst == CLINIC)
    share = np.where(clinic & (total <= 15_000), 1_500,
                     np.where(clinic & (total <= 20_000), np.floor(total * 0.1 / 100) * 100,
                              np.where(clinic & (total <= 25_000), np.floor(total * 0.2 / 100) * 100, share)))
    pharmacy = elderly & (care == PHARMACY)
    share = np.where(pharmacy & (total <= 10_000), 1_000,
                     np.where(pharmacy & (total <= 12_000), np.floor(total * 0.2 / 100) * 100, share))
    share = np.where((care == OUTPATIENT) & (inst == HEALTH_CENTER) & standard, 500, share)
    # medical aid: flat fees for ambulatory care, nothing for admissions and emergencies
    aid_fee = np.select([care == PHARMACY, inst == CLINIC, inst == TERTIARY, inst == HEALTH_CENTER],
                        [500, 1_000, 2_000, 0], default=1_500)
    share = np.where(insurance == 2, np.where(ambulatory, aid_fee, 0), share)
    return np.minimum(share, total).astype(np.int64)


# ----------------------------------------------------------------------------------------- tables


@cache
def _arrow_schemas() -> dict[str, pa.Schema]:
    """Arrow schema of every table of kr_claims (read once per process): column order, types, nullability."""
    types = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "DATE": pa.date32(),
             "TIMESTAMP": pa.timestamp("us"), "BOOLEAN": pa.bool_()}
    return {
        name: pa.schema([pa.field(c.name, types[c.sql_type], nullable=c.nullable) for c in spec.columns.values()])
        for name, spec in load_schema(SCHEMA_NAME).tables.items()
    }


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1)), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def _dates(days: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.int32(), mask=mask).cast(pa.date32())


def _strings(vocabulary: tuple[str, ...], idx: np.ndarray) -> pa.Array:
    indices = pa.array(idx, type=pa.int64(), mask=idx < 0)
    return pa.array(vocabulary, type=pa.string()).take(indices)


def _table(name: str, columns: dict[str, pa.Array | np.ndarray]) -> pa.Table:
    schema = _arrow_schemas()[name]
    arrays = [pa.array(columns[f.name]) if isinstance(columns[f.name], np.ndarray) else columns[f.name]
              for f in schema]
    return pa.Table.from_arrays([a.cast(f.type) for a, f in zip(arrays, schema)], schema=schema)


def _patients_table(rng: np.random.Generator, people: People) -> pa.Table:
    n = len(people.age)
    birth = np.array(people.birth, dtype="datetime64[D]")
    year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    month = (birth.astype("datetime64[M]").astype(np.int64) % 12) + 1
    day = (birth - birth.astype("datetime64[M]")).astype(np.int64) + 1
    sex = np.where(people.male, "M", "F")
    surnames = np.array([s for s, _ in SURNAMES])[rng.choice(len(SURNAMES), size=n, p=_weights(SURNAMES))]
    era = np.where(year < 1970, "old", np.where(year < 1995, "mid", "new"))
    given = np.empty(n, dtype=object)
    for (s, e), names in GIVEN_NAMES.items():
        mask = (sex == s) & (era == e)
        given[mask] = np.array(names)[rng.integers(0, len(names), size=int(mask.sum()))]
    name = pc.binary_join_element_wise(pa.array(surnames), pa.array(given.astype(str)), " ")
    # resident registration number YYMMDD-GRRRRSC: G sex and century, S serial, C check digit
    gender = np.where(people.male, 1, 2) + np.where(year >= 2000, 2, 0)
    rest = rng.integers(0, 100_000, size=n)
    digits = np.column_stack([year % 100 // 10, year % 10, month // 10, month % 10, day // 10, day % 10, gender,
                              *(rest // 10 ** p % 10 for p in (4, 3, 2, 1, 0))])
    weights = np.array([2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5])
    check = (11 - digits @ weights % 11) % 10
    front = (year % 100) * 10_000 + month * 100 + day
    back = gender * 1_000_000 + rest * 10 + check
    rrn = pc.binary_join_element_wise(_pad(front, 6), _pad(back, 7), "-")
    middle, last = rng.integers(2_000, 10_000, size=n), rng.integers(0, 10_000, size=n)
    phone = pc.binary_join_element_wise(pa.scalar("010"), _pad(middle, 4), _pad(last, 4), "-")
    phone = pc.if_else(pa.array(people.age < 10), pa.scalar(None, pa.string()), phone)
    return _table("patients", {
        "patient_id": _ids("P", n, 7), "name": name, "rrn": rrn, "phone": phone,
        "sex": pa.array(sex.astype(str)), "birth_year": year,
        "region": _strings(REGIONS, people.region),
        "insurance_type": _strings(("employee", "self_employed", "medical_aid"), people.insurance),
        "income_decile": people.decile.astype(np.int64),
        "eligibility_start": _dates(people.start), "eligibility_end": _dates(people.end),
        "death_date": _dates(np.maximum(people.death, 0), mask=people.death < 0),
    })


def _pad(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(pa.array(values.astype(np.int64)), pa.string()), width=width, padding="0")


# ----------------------------------------------------------------------------------------- simulate


def simulate(n_patients: int = 10_000, *, seed: int = 0,
             reference_date: dt.date = dt.date(2024, 12, 31)) -> dict[str, pa.Table]:
    """Tables of a simulated kr_claims population, keyed by table name, deterministic for a seed.

    Claims cover the year up to ``reference_date`` (the 365 days before it and the day itself).
    Raises ValueError naming every parameter out of range.
    """
    _check_params(n_patients, seed, reference_date)
    n = int(n_patients)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(12)]
    ref_day = (reference_date - EPOCH).days
    window_start = ref_day - WINDOW_DAYS
    people = _people(streams[0], n, ref_day, window_start)

    visits = _concat([
        _programme_visits(streams[1], people),
        _condition_visits(streams[2], people),
        _acute_visits(streams[3], people),
        _pregnancy_visits(streams[4], people, window_start, ref_day),
        _terminal_visits(streams[5], people),
    ])
    visits = _concat([visits, _admissions_from_emergency(streams[6], visits)])
    visits = replace(visits, los=_stays(streams[11], visits, people))

    rng = streams[7]
    dx = _diagnosis_matrix(rng, visits, people)
    # sporadic visits supply days drawn from the reason's range; programme visits their interval
    lo = np.array([r.days[0] for r in REASONS])[visits.reason]
    hi = np.array([r.days[1] for r in REASONS])[visits.reason]
    days = np.where(visits.days > 0, visits.days, lo + np.floor(rng.random(len(visits)) * (hi - lo + 1)))
    visits = replace(visits, days=np.clip(days, 1, 365).astype(np.int64))
    rx_prob = np.array([r.rx for r in REASONS])[visits.reason]
    rx_prob = rx_prob * np.where(visits.care == EMERGENCY, 0.6, 1.0)
    rx = (visits.care != INPATIENT) & (rng.random(len(visits)) < rx_prob)
    rx_visit, rx_drug, rx_dose = _prescriptions(streams[8], visits, people, rx)
    rx &= np.bincount(rx_visit, minlength=len(visits)) > 0

    # prescriptions of outpatient and emergency visits go to a pharmacy the same day, except at
    # public health centres and for drugs given in the hospital (chemotherapy)
    in_house = np.array([r.in_house for r in REASONS])[visits.reason] | (visits.inst == HEALTH_CENTER)
    dispensed = np.flatnonzero(rx & ~in_house)
    pharmacy = visits.take(dispensed)
    pharmacy = replace(pharmacy, care=np.full(len(dispensed), PHARMACY), inst=np.full(len(dispensed), DRUGSTORE),
                       first=np.zeros(len(dispensed), bool))
    claims = _concat([visits, pharmacy])
    claim_dx = np.concatenate([dx, dx[dispensed]])
    target = np.arange(len(visits))
    target[dispensed] = len(visits) + np.arange(len(dispensed))
    rx_claim = target[rx_visit]

    # order claims by patient, day and care type; every other table follows the claim order
    order = np.lexsort((CARE_RANK[claims.care], claims.day, claims.pid))
    claims = claims.take(order)
    claim_dx = claim_dx[order]
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    rx_claim = position[rx_claim]

    # a drug's own days (injections, single doses) or the visit's; pharmacy fees follow the longest
    rx_days = np.where(DRUG_DAYS[rx_drug] > 0, DRUG_DAYS[rx_drug], claims.days[rx_claim]).astype(np.int64)
    longest = np.zeros(len(claims), dtype=np.int64)
    np.maximum.at(longest, rx_claim, rx_days)
    claims = replace(claims, days=longest)
    lines = _details(streams[9], claims)
    amount = np.round(lines.quantity * lines.price)
    drug_cost = np.round(DRUG_PRICE[rx_drug] * rx_dose * rx_days)
    total = (np.bincount(lines.claim, weights=amount, minlength=len(claims))
             + np.bincount(rx_claim, weights=drug_cost, minlength=len(claims)))
    age = (claims.day - people.birth[claims.pid]) // 365.25
    share = _patient_share(claims, total, age, people.insurance[claims.pid])

    return _tables(streams[10], people, claims, claim_dx, lines, amount, rx_claim, rx_drug, rx_dose, rx_days,
                   total, share)


def _tables(rng: np.random.Generator, people: People, claims: Visits, claim_dx: np.ndarray, lines: Lines,
            amount: np.ndarray, rx_claim: np.ndarray, rx_drug: np.ndarray, rx_dose: np.ndarray,
            rx_days: np.ndarray, total: np.ndarray, share: np.ndarray) -> dict[str, pa.Table]:
    patient_ids = _ids("P", len(people.age), 7)
    claim_ids = _ids("C", len(claims), 9)
    dx_row, dx_seq, dx_code = _compact(claim_dx)
    sub = np.full(len(claims), -1, dtype=np.int64)
    sub[dx_row[dx_seq == 2]] = dx_code[dx_seq == 2]

    line_order = np.argsort(lines.claim, kind="stable")
    line_claim = lines.claim[line_order]
    counts = np.bincount(line_claim, minlength=len(claims))
    rx_order = np.argsort(rx_claim, kind="stable")

    return {
        "patients": _patients_table(rng, people),
        "claims": _table("claims", {
            "claim_id": claim_ids, "patient_id": patient_ids.take(pa.array(claims.pid)),
            "visit_date": _dates(claims.day), "care_type": _strings(CARE_TYPES, claims.care),
            "institution_type": _strings(INSTITUTIONS, claims.inst), "main_dx": _strings(CODES, claims.code),
            "sub_dx": _strings(CODES, sub), "length_of_stay": claims.los, "total_cost": total.astype(np.int64),
            "patient_share": share,
        }),
        "claim_details": _table("claim_details", {
            "detail_id": _ids("D", len(line_claim), 10), "claim_id": claim_ids.take(pa.array(line_claim)),
            "line_no": _group_index(counts) + 1, "category": _strings(CATEGORIES, lines.category[line_order]),
            "treatment_code": _strings(ITEM_CODES, lines.code[line_order]),
            "quantity": lines.quantity[line_order].astype(float),
            "unit_price": lines.price[line_order].astype(np.int64), "amount": amount[line_order].astype(np.int64),
        }),
        "diagnoses": _table("diagnoses", {
            "diagnosis_id": _ids("X", len(dx_row), 10), "claim_id": claim_ids.take(pa.array(dx_row)),
            "seq": dx_seq.astype(np.int64), "kcd_code": _strings(CODES, dx_code),
            "dx_type": _strings(("main", "sub"), (dx_seq > 1).astype(np.int64)),
        }),
        "prescriptions": _table("prescriptions", {
            "prescription_id": _ids("R", len(rx_claim), 10), "claim_id": claim_ids.take(pa.array(rx_claim[rx_order])),
            "atc_code": _strings(tuple(d.atc for d in DRUGS), rx_drug[rx_order]),
            "daily_dose": rx_dose[rx_order].astype(float), "days_supplied": rx_days[rx_order],
        }),
    }


def patient_slice(frames: dict[str, pa.Table], lo: int, hi: int) -> dict[str, pa.Table]:
    """Patients lo..hi (in simulation order) of a simulated population, with all their rows.

    Disjoint slices are disjoint populations: train, holdout and fresh "synthetic" patients for calibration.
    """
    keys = frames["patients"].column("patient_id").slice(lo, hi - lo).combine_chunks()
    claims_mask = pc.is_in(frames["claims"].column("patient_id"), value_set=keys)
    claim_ids = frames["claims"].filter(claims_mask).column("claim_id").combine_chunks()
    out = {}
    for name, table in frames.items():
        if name == "patients":
            mask = pc.is_in(table.column("patient_id"), value_set=keys)
        elif name == "claims":
            mask = claims_mask
        else:
            mask = pc.is_in(table.column("claim_id"), value_set=claim_ids)
        out[name] = table.filter(mask)
    return out
