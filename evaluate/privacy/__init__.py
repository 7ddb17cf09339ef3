"""Privacy metrics: how much synthetic data reveals about the real training patients.

The unit is the patient (``records.py``). Importing this package registers every privacy metric:

========================================  =========================================================
registered metric                         results
========================================  =========================================================
``privacy.exact_copies``                  ``privacy.exact_copies``
``privacy.dcr``                           ``privacy.dcr.share_closer_to_train``, ``privacy.dcr.near_copy_share``,
                                          ``privacy.nndr.median``
``privacy.mia.distance``                  ``privacy.mia.distance.{auc, tpr_at_fpr_1pct, tpr_at_fpr_0.1pct, advantage}``
``privacy.mia.domias``                    ``privacy.mia.domias.{...}``
``privacy.mia.shadow``                    ``privacy.mia.shadow.{...}``
``privacy.singling_out``                  ``privacy.singling_out.risk``
``privacy.linkability``                   ``privacy.linkability.risk``
``privacy.attribute_inference``           ``privacy.attribute_inference.risk``
``privacy.k_anonymity``                   ``privacy.k_anonymity.small_class_share``, ``privacy.unique_qi_matches``
``privacy.rare_code_leakage``             ``privacy.rare_code_leakage``
``privacy.audit``                         ``privacy.epsilon_lower_bound`` (one-run canary audit; refits the generator)
========================================  =========================================================
"""
from evaluate.privacy import (  # noqa: F401  (register the metrics)
    dcr,
    exact_copies,
    inference,
    linkability,
    mia_distance,
    mia_domias,
    mia_shadow,
    quasi_identifiers,
    rare_codes,
    singling_out,
)
from evaluate.privacy import audit  # noqa: F401,E402  (registered last: it reuses the attacks' scores)
