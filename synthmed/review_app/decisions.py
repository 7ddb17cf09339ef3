"""The rules of a decision on a release, enforced where the review is appended (not only in the app's form).

Who: only a signed-in identity whose role in the store's ``review.toml`` is reviewer decides; the identity
that requested the release cannot approve it. What: an approval needs a release whose files verify, an
intact catalog chain and an evaluation; a high-risk verdict (or a failed or missing required policy
result) needs an explicit override with a written justification. How many: with ``approvals_required = 2``
a release counts as approved only once two different reviewers approved it.

``record_decision`` reads the facts again inside the transaction that appends the review (see
``Catalog.add_review``'s ``check``), so a decision is judged on what the catalog holds when it goes in.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from synth.catalog import DECISIONS
from synth.release import Store
from synthmed.review_app.access import Identity, ReviewConfig, Role, load_review_config
from synthmed.review_app.errors import ReviewRefusedError

MIN_JUSTIFICATION = 20
MAX_SIGN_IN_AGE_S = 12 * 3600  # Streamlit's sign-in cookie lasts 30 days; groups and identity are re-vouched daily
STATUS_LABELS = {"approve": "approved", "reject": "rejected", "request_changes": "changes requested"}
_APPEND_LOCK = threading.Lock()  # one decision at a time per process (the app serves many sessions in threads)


@dataclass(frozen=True)
class ReviewRow:
    """What a past review says, as far as the rules need it."""

    decision: str
    issuer: str | None
    subject: str | None
    manifest_hash: str | None


@dataclass(frozen=True)
class ReleaseFacts:
    """What the catalog says about a release when a decision is judged."""

    release_id: str
    manifest_hash: str
    requested_by: str | None
    requested_os_user: str | None
    evaluation_id: str | None
    risk_level: str | None
    policy: dict[str, Any] | None
    reviews: tuple[ReviewRow, ...]


def read_facts(con: duckdb.DuckDBPyConnection, release_id: str) -> ReleaseFacts | None:
    """The release row, its latest evaluation and its reviews, read on ``con`` (None: no such release)."""
    row = con.execute(
        "SELECT manifest_hash, requested_by, requested_os_user FROM releases WHERE release_id = ?", [release_id]
    ).fetchone()
    if row is None:
        return None
    ev = con.execute(
        "SELECT evaluation_id, risk_level, policy_json FROM evaluations WHERE release_id = ? "
        "ORDER BY created_at DESC LIMIT 1", [release_id]
    ).fetchone()
    reviews = con.execute(
        "SELECT decision, issuer, subject, manifest_hash FROM reviews WHERE release_id = ? ORDER BY created_at, rowid",
        [release_id],
    ).fetchall()
    return ReleaseFacts(
        release_id=release_id, manifest_hash=row[0], requested_by=row[1], requested_os_user=row[2],
        evaluation_id=ev[0] if ev else None, risk_level=ev[1] if ev else None,
        policy=json.loads(ev[2]) if ev and ev[2] else None,
        reviews=tuple(ReviewRow(*r) for r in reviews),
    )


def override_reasons(risk_level: str | None, policy: dict[str, Any] | None) -> list[str]:
    """Why approving this verdict needs an explicit override (empty: it does not)."""
    if policy is None:
        return ["the evaluation has no policy verdict, so nothing says the risk is acceptable"]
    reasons = []
    if (risk_level or policy.get("risk_level")) == "high":
        reasons.append("the policy verdict is high risk")
    for v in policy.get("verdicts", []):
        required_missing = v.get("status") == "warn" and (v.get("required") or "the policy requires" in str(v.get("reason", "")))
        if v.get("status") == "fail":
            reasons.append(f"failed: {v.get('metric')}")
        elif required_missing:
            reasons.append(f"required result missing: {v.get('metric')}")
    return reasons


def current_approvers(reviews: Sequence[ReviewRow], manifest_hash: str) -> list[tuple[str | None, str | None]]:
    """Distinct identities that approved this manifest since the last rejection or request for changes."""
    approvers: list[tuple[str | None, str | None]] = []
    for r in reviews:
        if r.decision != "approve":
            approvers = []
        elif r.manifest_hash == manifest_hash and (r.issuer, r.subject) not in approvers:
            approvers.append((r.issuer, r.subject))
    return approvers


def release_status(reviews: Sequence[ReviewRow], manifest_hash: str, approvals_required: int = 1) -> str:
    """'approved', 'approved by 1 of 2', 'rejected', 'changes requested' or 'not reviewed'."""
    if not reviews:
        return "not reviewed"
    approvers = current_approvers(reviews, manifest_hash)
    if len(approvers) >= approvals_required:
        return "approved"
    if approvers:
        return f"approved by {len(approvers)} of {approvals_required}"
    last = next((r for r in reversed(reviews) if r.decision != "approve"), None)
    return STATUS_LABELS[last.decision] if last is not None else "not reviewed"


def decision_problems(
    facts: ReleaseFacts,
    *,
    decision: str,
    identity: Identity | None,
    role: Role,
    comment: str,
    override: bool,
    justification: str,
    config: ReviewConfig,
    verify_problems: Sequence[str] = (),
    chain_problems: Sequence[str] = (),
    now: float | None = None,
) -> list[str]:
    """Every reason the decision cannot be recorded (empty: it can)."""
    now = time.time() if now is None else now
    problems: list[str] = []
    if decision not in DECISIONS:
        return [f"the decision must be one of {', '.join(DECISIONS)}; got {decision!r}"]
    if identity is None:
        return ["sign in first: a decision is recorded under the identity the hospital's identity provider gives"]
    age = None if identity.issued_at is None else now - identity.issued_at
    if age is None or age > MAX_SIGN_IN_AGE_S:
        problems.append(f"your sign-in is {'of unknown age' if age is None else f'{age / 3600:.0f} hours old'}: "
                        "sign out and in again, so the identity provider confirms who you are and your groups "
                        f"(decisions need a sign-in younger than {MAX_SIGN_IN_AGE_S // 3600} hours)")
    if not role.can_decide:
        problems.append(f"{identity.display} (subject {identity.subject} at {identity.issuer}) is not a reviewer of "
                        "this store, so they may read but not decide; the store's administrator names reviewers in "
                        "review.toml")
    if decision in ("reject", "request_changes") and not comment.strip():
        problems.append("say why in the comment (a rejection or a request for changes needs one)")
    if override and decision != "approve":
        problems.append("an override applies to approvals only")
    if decision != "approve":
        return problems
    problems += [f"the catalog's audit chain is broken: {p}" for p in chain_problems]
    problems += [f"the release fails verification: {p}" for p in verify_problems]
    if facts.evaluation_id is None:
        problems.append(f"the release has no evaluation: run `synthmed evaluate {facts.release_id} --data DIR` first")
    for who in (facts.requested_by, facts.requested_os_user):
        if who and identity.is_named(who):
            problems.append(f"{identity.display} requested this release (recorded as {who!r}), so they cannot "
                            "approve it: another reviewer must (separation of duties)")
            break
    reasons = override_reasons(facts.risk_level, facts.policy) if facts.evaluation_id else []
    if reasons and not override:
        problems.append("approving needs an explicit override with a written justification, because "
                        + "; ".join(reasons))
    elif reasons and len(justification.strip()) < MIN_JUSTIFICATION:
        problems.append(f"an override needs a written justification of at least {MIN_JUSTIFICATION} characters "
                        "saying why the release may leave despite its verdict")
    elif override and not reasons and facts.evaluation_id is not None:
        problems.append("this release's verdict needs no override: approve it without one")
    if identity.key in current_approvers(facts.reviews, facts.manifest_hash):
        problems.append(f"{identity.display} has already approved this release"
                        + ("; the second approval must come from a different reviewer"
                           if config.approvals_required > 1 else ""))
    return problems


def record_decision(
    store: Store,
    release_id: str,
    *,
    identity: Identity | None,
    decision: str,
    comment: str = "",
    override: bool = False,
    justification: str = "",
    verify: Callable[[Store, str], Sequence[str]] | None = None,
    chain: Callable[[Store], Sequence[str]] | None = None,
) -> str:
    """Append a decision under ``identity`` if every rule allows it; returns the review id.

    ``verify`` returns the release's verification problems (default: recompute every file hash) and
    ``chain`` the catalog chain's problems. Raises ReviewRefusedError with every reason otherwise.
    """
    from synthmed.review_app import data  # data imports this module for release_status

    config = load_review_config(store)
    role = config.role_of(identity)
    verify = verify or (lambda s, rid: data.verify(s, rid).problems)
    chain = chain or data.chain_problems
    with _APPEND_LOCK:
        with store.catalog.connect(read_only=True) as con:
            facts = read_facts(con, release_id)
        if facts is None:
            raise ReviewRefusedError(release_id, [f"no release {release_id!r} in {store.catalog.path}"])
        heavy_ok = decision == "approve" and identity is not None and role.can_decide
        verify_problems = list(verify(store, release_id)) if heavy_ok else []
        chain_problems = list(chain(store)) if heavy_ok else []
        kwargs = dict(decision=decision, identity=identity, role=role, comment=comment, override=override,
                      justification=justification, config=config)
        problems = decision_problems(facts, verify_problems=verify_problems, chain_problems=chain_problems, **kwargs)
        if problems:
            raise ReviewRefusedError(release_id, problems)
        assert identity is not None  # decision_problems refuses a missing identity

        def check(con: duckdb.DuckDBPyConnection) -> None:
            now = read_facts(con, release_id)
            if now is None or (now.evaluation_id, now.manifest_hash) != (facts.evaluation_id, facts.manifest_hash):
                raise ReviewRefusedError(release_id, ["the release changed while you decided (a new evaluation?): "
                                                      "reload the page and decide again"])
            again = decision_problems(now, verify_problems=verify_problems, chain_problems=chain_problems, **kwargs)
            if again:
                raise ReviewRefusedError(release_id, again)

        return store.catalog.add_review(
            release_id, decision=decision, comment=comment.strip(), manifest_hash=facts.manifest_hash,
            issuer=identity.issuer, subject=identity.subject, email=identity.email, display_name=identity.display,
            role=role.label, evaluation_id=facts.evaluation_id, risk_level=facts.risk_level,
            override=override, justification=justification.strip() if override else "", check=check,
        )
