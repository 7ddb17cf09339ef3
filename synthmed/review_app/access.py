"""Who is signed in and what they may do: the identity from the hospital's identity provider and the store's reviewers.

The identity is what Streamlit's OpenID Connect sign-in (``st.login``) puts in ``st.user``: the ID token's
claims, verified by Authlib and carried in a signed cookie. A person is ``issuer`` + ``subject`` (stable,
never reassigned); email and name are for display only. Nothing here is typed by the user.

Reviewers are named in ``<store>/review.toml`` (see ``REVIEW_CONFIG``), by identity or by a group claim of
the ID token; everyone else signed in reads but cannot decide. No Streamlit here, so it is testable alone.
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.release import Store
from synthmed.review_app.errors import ReviewConfigError

REVIEW_CONFIG = "review.toml"
REVIEWER, READER = "reviewer", "reader"
EXAMPLE = """[review]
approvals_required = 1            # 2: an approval counts only with a second one from a different reviewer
groups_claim = "groups"           # the ID-token claim that lists the user's groups
reviewer_groups = ["synthmed-reviewers"]

[[review.reviewers]]
issuer = "https://idp.hospital.example/realms/hospital"
subject = "the reviewer's subject (shown in the app's sidebar once signed in)"
"""


@dataclass(frozen=True)
class Identity:
    """A signed-in person: issuer + subject identify them; email, name and groups come from the same token."""

    issuer: str
    subject: str
    email: str | None = None
    name: str | None = None
    username: str | None = None
    groups: tuple[str, ...] = ()
    issued_at: float | None = None  # the ID token's ``iat``: when the identity provider last vouched for this

    @property
    def key(self) -> tuple[str, str]:
        return (self.issuer, self.subject)

    @property
    def display(self) -> str:
        """A name for people: the name claim, else the email, else the subject."""
        return self.name or self.email or self.subject

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], *, groups_claim: str = "groups") -> Identity | None:
        """The identity in ``st.user`` (the ID token's claims), or None when not signed in or incomplete."""
        if not claims.get("is_logged_in"):
            return None
        issuer, subject = claims.get("iss"), claims.get("sub")
        if not isinstance(issuer, str) or not isinstance(subject, str) or not issuer.strip() or not subject.strip():
            return None
        raw_groups = claims.get(groups_claim) or ()
        if isinstance(raw_groups, str):
            raw_groups = (raw_groups,)
        groups = tuple(str(g) for g in raw_groups) if isinstance(raw_groups, (list, tuple)) else ()

        def text(name: str) -> str | None:
            value = claims.get(name)
            return str(value) if isinstance(value, (str, int)) and str(value).strip() else None

        iat = claims.get("iat")
        issued_at = float(iat) if isinstance(iat, (int, float)) and not isinstance(iat, bool) else None
        return cls(issuer=issuer, subject=subject, email=text("email"), name=text("name"),
                   username=text("preferred_username"), groups=groups, issued_at=issued_at)

    def is_named(self, name: str) -> bool:
        """Whether ``name`` (a ``--requested-by`` value or an OS user) names this person.

        Matches the subject, the email, the preferred username or, for a bare name, the email's local part,
        all without regard to case: separation of duties errs on the side of refusing.
        """
        wanted = name.strip().lower()
        if not wanted:
            return False
        names = {self.subject.lower(), f"{self.issuer}|{self.subject}".lower()}
        if self.email:
            names.add(self.email.lower())
            if "@" not in wanted:
                names.add(self.email.split("@", 1)[0].lower())
        if self.username:
            names.add(self.username.lower())
        return wanted in names


@dataclass(frozen=True)
class Role:
    """What the identity may do, and why: ``reviewer`` (named, or by group) or ``reader``."""

    name: str
    basis: str

    @property
    def can_decide(self) -> bool:
        return self.name == REVIEWER

    @property
    def label(self) -> str:
        """What is recorded with a decision, e.g. ``reviewer (group synthmed-reviewers)``."""
        return f"{self.name} ({self.basis})"


@dataclass(frozen=True)
class ReviewConfig:
    """The store's review settings: named reviewers, reviewer groups, and how many approvals a release needs."""

    reviewers: frozenset[tuple[str, str]] = frozenset()
    reviewer_groups: frozenset[str] = frozenset()
    groups_claim: str = "groups"
    groups_issuer: str | None = None
    approvals_required: int = 1
    source: Path | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def has_reviewers(self) -> bool:
        return bool(self.reviewers or self.reviewer_groups)

    def role_of(self, identity: Identity | None) -> Role:
        """The role of a signed-in identity; None (not signed in) reads."""
        if identity is None:
            return Role(READER, "not signed in")
        if identity.key in self.reviewers:
            return Role(REVIEWER, "named in review.toml")
        if self.groups_issuer is None or self.groups_issuer == identity.issuer:
            for group in identity.groups:
                if group in self.reviewer_groups:
                    return Role(REVIEWER, f"group {group}")
        return Role(READER, "not a reviewer of this store")


def load_review_config(store: Store) -> ReviewConfig:
    """``<store>/review.toml``, or an empty configuration (nobody decides) when the file is absent."""
    path = store.root / REVIEW_CONFIG
    if not path.is_file():
        return ReviewConfig(notes=(f"no {path}: nobody may decide on this store's releases yet",))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ReviewConfigError(f"cannot read {path}: {exc}") from None
    return parse_review_config(raw, source=path)


def parse_review_config(raw: Mapping[str, Any], *, source: Path | None = None) -> ReviewConfig:
    """Check the ``[review]`` table, collecting every problem, and raise once with all of them."""
    where = str(source or "review.toml")
    section = raw.get("review")
    problems: list[str] = []
    if not isinstance(section, Mapping):
        raise ReviewConfigError(f"{where}: needs a [review] table, for example:\n{EXAMPLE}")
    unknown = sorted(set(section) - {"reviewers", "reviewer_groups", "groups_claim", "groups_issuer", "approvals_required"})
    if unknown:
        problems.append(f"unknown key(s) in [review]: {', '.join(unknown)}")
    reviewers: set[tuple[str, str]] = set()
    for i, entry in enumerate(section.get("reviewers", []) or []):
        if not isinstance(entry, Mapping):
            problems.append(f"review.reviewers[{i}]: must be a table with issuer and subject")
            continue
        issuer, subject = entry.get("issuer"), entry.get("subject")
        if not isinstance(issuer, str) or not issuer.strip() or not isinstance(subject, str) or not subject.strip():
            problems.append(f"review.reviewers[{i}]: needs a non-empty issuer and subject; got {dict(entry)!r}")
            continue
        reviewers.add((issuer, subject))
    groups = section.get("reviewer_groups", []) or []
    if not isinstance(groups, list) or not all(isinstance(g, str) and g.strip() for g in groups):
        problems.append(f"review.reviewer_groups: must be a list of group names; got {groups!r}")
        groups = []
    claim = section.get("groups_claim", "groups")
    if not isinstance(claim, str) or not claim.strip():
        problems.append(f"review.groups_claim: must be a claim name; got {claim!r}")
        claim = "groups"
    groups_issuer = section.get("groups_issuer")
    if groups_issuer is not None and (not isinstance(groups_issuer, str) or not groups_issuer.strip()):
        problems.append(f"review.groups_issuer: must be the issuer URL whose groups count; got {groups_issuer!r}")
        groups_issuer = None
    approvals = section.get("approvals_required", 1)
    if isinstance(approvals, bool) or approvals not in (1, 2):
        problems.append(f"review.approvals_required: must be 1 or 2; got {approvals!r}")
        approvals = 1
    if problems:
        raise ReviewConfigError(f"{where}: " + "; ".join(problems))
    return ReviewConfig(frozenset(reviewers), frozenset(groups), claim, groups_issuer, int(approvals), source)
