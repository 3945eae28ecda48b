"""astrid-core: the types every Astrid package shares.

Errors (one tree under AstridError), typed ids, the closed set of SensitiveActions, input
classification, the Frontend and Guard protocols, and the storage protocol with its backends.
Nothing here imports an LLM, MCP, WASM or crypto library.
"""

from ._actions import (
    ActionBase,
    CapsuleHostCall,
    DirectoryList,
    FileDelete,
    FileRead,
    FileWrite,
    LlmCall,
    McpSampling,
    McpToolCall,
    Name,
    NetworkRequest,
    SensitiveAction,
    ShellCommand,
    SubAgentSpawn,
    TranscriptAccess,
    action_from_json,
    action_to_json,
    one_line,
)
from ._errors import (
    ApprovalDenied,
    AstridError,
    AstridTimeoutError,
    BadInputError,
    BudgetDenied,
    CapabilityDenied,
    ConfigError,
    FrontendUnavailable,
    NotFoundError,
    PolicyDenied,
    SecurityDenied,
    StorageError,
    VerificationError,
    WorkspaceDenied,
)
from ._frontend import (
    ALL_APPROVAL_OPTIONS,
    ApprovalDecision,
    ApprovalOption,
    ApprovalRequest,
    ElicitationRequest,
    ElicitationResponse,
    Frontend,
    UrlElicitationRequest,
    UserInput,
)
from ._guard import Authorization, AuthorizationProof, DenialLayer, Guard, ProofKind
from ._ids import AuditEntryId, CapsuleId, RequestId, SessionId, TokenId, TypedId
from ._json import JsonObject, JsonValue
from ._messages import MessageTrust, TaggedMessage
from ._permissions import Permission
from ._risk import RiskLevel
from .net import AddressKind, classify_host, classify_ip, is_public_ip, non_public_addresses

__version__ = "0.1.0"

__all__ = [
    # addresses (astrid_core.net)
    "AddressKind",
    "classify_host",
    "classify_ip",
    "is_public_ip",
    "non_public_addresses",
    # errors
    "AstridError",
    "ConfigError",
    "BadInputError",
    "SecurityDenied",
    "PolicyDenied",
    "CapabilityDenied",
    "BudgetDenied",
    "ApprovalDenied",
    "WorkspaceDenied",
    "VerificationError",
    "StorageError",
    "AstridTimeoutError",
    "NotFoundError",
    "FrontendUnavailable",
    # ids
    "TypedId",
    "SessionId",
    "TokenId",
    "AuditEntryId",
    "RequestId",
    "CapsuleId",
    # actions
    "RiskLevel",
    "Permission",
    "ActionBase",
    "SensitiveAction",
    "McpToolCall",
    "Name",
    "one_line",
    "FileRead",
    "FileWrite",
    "FileDelete",
    "DirectoryList",
    "ShellCommand",
    "NetworkRequest",
    "CapsuleHostCall",
    "SubAgentSpawn",
    "LlmCall",
    "McpSampling",
    "TranscriptAccess",
    "action_from_json",
    "action_to_json",
    # messages
    "MessageTrust",
    "TaggedMessage",
    # frontend
    "Frontend",
    "ApprovalOption",
    "ALL_APPROVAL_OPTIONS",
    "ApprovalRequest",
    "ApprovalDecision",
    "ElicitationRequest",
    "ElicitationResponse",
    "UrlElicitationRequest",
    "UserInput",
    # guard
    "Guard",
    "Authorization",
    "AuthorizationProof",
    "ProofKind",
    "DenialLayer",
    # json
    "JsonValue",
    "JsonObject",
    "__version__",
]
