"""astrid-approval: the security interceptor — policy, capabilities, budget, approval, audit."""

from ._allowances import Allowance, AllowanceKind, AllowanceStore
from ._approvals import (
    ApprovalHandler,
    ApprovalManager,
    Deferred,
    DeferredItem,
    DeferredResolutionStore,
)
from ._budget import BudgetCheck, BudgetConfig, BudgetStatus, BudgetTracker, Reservation
from ._describe import (
    action_preview,
    describe_allowance,
    describe_always,
    describe_pattern,
    human_duration,
)
from ._ifc import FlowHints, Taint, TrustLabel
from ._interceptor import GrantRefusal, InterceptResult, SecurityInterceptor
from ._network import is_private_address, private_addresses
from ._normalize import Normalized, normalize_action
from ._paths import (
    NormalizedPath,
    is_within,
    normalize_path,
    path_entry_fix,
    path_entry_problem,
)
from ._policy import (
    DEFAULT_BLOCKED_COMMANDS,
    DEFAULT_DENIED_PATHS,
    DEFAULT_PROTECTED_PATHS,
    PolicyVerdict,
    SecurityPolicy,
    Verdict,
)
from ._policyfile import PolicyFile, PolicyGrant, PolicyLabel, PolicySettings, parse_policy
from ._shell import ParsedLine, SimpleCommand, parse_command_line
from ._workspace import EscapePolicy, Placement, WorkspaceBoundary, WorkspaceMode

__version__ = "0.1.0"

__all__ = [
    "SecurityInterceptor",
    "GrantRefusal",
    "FlowHints",
    "Taint",
    "TrustLabel",
    "PolicyFile",
    "PolicyGrant",
    "PolicyLabel",
    "PolicySettings",
    "parse_policy",
    "InterceptResult",
    "SecurityPolicy",
    "PolicyVerdict",
    "Verdict",
    "DEFAULT_BLOCKED_COMMANDS",
    "DEFAULT_DENIED_PATHS",
    "DEFAULT_PROTECTED_PATHS",
    "path_entry_problem",
    "path_entry_fix",
    "BudgetConfig",
    "BudgetTracker",
    "BudgetCheck",
    "BudgetStatus",
    "Reservation",
    "Allowance",
    "AllowanceKind",
    "AllowanceStore",
    "describe_allowance",
    "describe_always",
    "describe_pattern",
    "action_preview",
    "human_duration",
    "ApprovalHandler",
    "ApprovalManager",
    "Deferred",
    "DeferredItem",
    "DeferredResolutionStore",
    "WorkspaceBoundary",
    "WorkspaceMode",
    "EscapePolicy",
    "Placement",
    "Normalized",
    "normalize_action",
    "NormalizedPath",
    "normalize_path",
    "is_within",
    "ParsedLine",
    "SimpleCommand",
    "parse_command_line",
    "is_private_address",
    "private_addresses",
    "__version__",
]
