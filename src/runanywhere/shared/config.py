"""How the shared tier talks to its store: every knob of :class:`~.tier.SharedTier` in one value.

Where the tier lives (bucket, prefix, the lease's ``wait`` and ``stale``) is the
:class:`~.location.SharedLocation` parsed from ``s3://bucket/prefix?wait=..&stale=..``; how it
talks to that store is a :class:`SharedConfig`. The defaults suit a team cache next to the
origin: a store that does not answer within seconds is stepped around, not waited for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..retry import RetryPolicy

MiB = 2**20
#: Each S3 call (lookups, lease writes, uploads and their parts) is tried again under this
#: policy: two retries within a few seconds, since the origin is usually better than a store
#: that keeps failing.
STORE_RETRY = RetryPolicy(attempts=2, delay=0.5, cap=5.0)


@dataclass(frozen=True)
class SharedConfig:
    """Connection, retry, upload and read settings of the shared tier."""

    #: The S3 endpoint; None: ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else AWS.
    endpoint_url: str | None = None
    region: str | None = None
    #: Credentials; None: the standard AWS chain (variables, profile, instance role).
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    retry: RetryPolicy = STORE_RETRY
    #: Seconds the tier steps aside after its store failed (then it is tried again).
    step_aside: float = 60.0
    #: Files from this size on go up as a multipart upload of ``part_size`` parts,
    #: ``upload_concurrency`` in flight.
    multipart_threshold: int = 64 * MiB
    part_size: int = 16 * MiB
    upload_concurrency: int = 4
    #: A read from the tier slower than ``min_speed`` bytes/s over ``stall_window`` s counts as
    #: failed (the origin then brings the bytes).
    min_speed: float = 256 * 1024
    stall_window: float = 10.0
    #: How often a follower looks for a blob another machine is fetching (growing to the max).
    poll_interval: float = 0.25
    max_poll_interval: float = 1.0
    #: False: no warning when the tier steps aside (the caller reports failures itself, as
    #: ``cache push`` does).
    warn: bool = True

    def credentials(self) -> dict[str, str]:
        """The credentials given, as boto3's client keywords."""
        return {k: v for k, v in (("aws_access_key_id", self.aws_access_key_id),
                                  ("aws_secret_access_key", self.aws_secret_access_key),
                                  ("aws_session_token", self.aws_session_token)) if v}
