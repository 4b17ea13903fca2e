"""Everything that speaks to Planhat: the client, the model registry and the sandbox."""

from connectors.planhat.bulk import Outcome, RecordResult
from connectors.planhat.client import DEFAULT_BASE_URL, PlanhatClient
from connectors.planhat.errors import (
    FatalError,
    NotFoundError,
    PlanhatError,
    RateLimitedError,
    RejectedError,
    RetryableError,
)
from connectors.planhat.models import MODELS, ModelSpec, Operation, model_spec
from connectors.planhat.retry import RetryPolicy

__all__ = [
    "DEFAULT_BASE_URL",
    "MODELS",
    "FatalError",
    "ModelSpec",
    "NotFoundError",
    "Operation",
    "Outcome",
    "PlanhatClient",
    "PlanhatError",
    "RateLimitedError",
    "RecordResult",
    "RejectedError",
    "RetryPolicy",
    "RetryableError",
    "model_spec",
]
