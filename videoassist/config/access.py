"""Who may come in, and for how long: sessions, join links and their tokens, the
signing keys, sign-in limits and the audit of refusals."""

from __future__ import annotations

from dataclasses import dataclass, field

from videoassist.config.values import POSITIVE, Secret, doc, within


@dataclass(frozen=True, kw_only=True)
class AccessSettings:
    """Sessions, links, tokens and sign-in limits."""

    session_ttl_s: int = field(default=12 * 3600, metadata=doc("Staff session token lifetime.",
                                                                bounds=POSITIVE))
    invite_ttl_s: int = field(
        default=900,
        metadata=doc("Default lifetime of a join link: short, because a link opened but "
                      "not used stays in the browser's history (docs/security.md)."),
    )
    invite_max_ttl_s: int = field(
        default=24 * 3600, metadata=doc("Longest lifetime a join link may be given.",
                                         bounds=within(1, 24 * 3600))
    )
    participant_ttl_s: int = field(
        default=4 * 3600,
        metadata=doc("Lifetime of the token a redeemed join link gives (one call's length).",
                      bounds=POSITIVE),
    )
    password_link_ttl_s: int = field(
        default=3600, metadata=doc("Lifetime of a set-password link (first admin, resets).",
                                    bounds=within(1, 24 * 3600))
    )
    jwt_keys: Secret | None = field(
        default=None,
        metadata=doc(
            "Token signing keys as KID:KEY[,KID:KEY]; the first signs, all verify. "
            "Keys are at least 32 bytes. Default: generated into DATA_DIR/jwt-keys.json."
        ),
    )
    token_leeway_s: int = field(
        default=10, metadata=doc("Clock skew allowed when checking token times (at most 30).",
                                  bounds=within(0, 30))
    )
    signin_max_failures: int = field(
        default=5, metadata=doc("Failed sign-ins per username within the window before 429.",
                                 bounds=POSITIVE)
    )
    signin_max_failures_per_client: int = field(
        default=20, metadata=doc("Failed sign-ins per client address within the window.",
                                  bounds=POSITIVE)
    )
    signin_window_s: int = field(
        default=300, metadata=doc("Window over which failed sign-ins are counted.",
                                   bounds=POSITIVE)
    )
    audit_refusals_window_s: float = field(
        default=60.0,
        metadata=doc(
            "Window over which a client's refusals without signing in (an unknown or "
            "revoked API key, a sign-in refused with 429) are one audit row and a count.",
            bounds=within(1, 86400)
        ),
    )
    audit_refusals_max_clients: int = field(
        default=20,
        metadata=doc(
            "Clients whose refusals get audit rows of their own in a window; the others' "
            "are counted together under client:*.",
            bounds=within(1, 10000)
        ),
    )
    trust_forwarded_for: bool = field(
        default=False,
        metadata=doc(
            "Take the client address from X-Forwarded-For (only behind a reverse proxy "
            "that sets it)."
        ),
    )
