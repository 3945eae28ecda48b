"""astrid-core: the types every Astrid package shares.

Errors (one tree under AstridError), typed ids, the closed set of SensitiveActions, input
classification, the Frontend and Guard protocols, and the storage protocol with its backends.
Nothing here imports an LLM, MCP, WASM or crypto library.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each name is imported from its module at first use (PEP 562), so that `from astrid_core import
# ConfigError` does not build every pydantic model of the package: the CLI's quick commands
# (`astrid status`) import only what they use.
_LAZY: dict[str, str] = {
    "ActionBase": "_actions",
    "CapsuleHostCall": "_actions",
    "DirectoryList": "_actions",
    "FileDelete": "_actions",
    "FileRead": "_actions",
    "FileWrite": "_actions",
    "LlmCall": "_actions",
    "McpSampling": "_actions",
    "McpToolCall": "_actions",
    "Name": "_actions",
    "NetworkRequest": "_actions",
    "SensitiveAction": "_actions",
    "ShellCommand": "_actions",
    "SubAgentSpawn": "_actions",
    "TranscriptAccess": "_actions",
    "action_from_json": "_actions",
    "action_to_json": "_actions",
    "one_line": "_actions",
    "ApprovalDenied": "_errors",
    "AstridError": "_errors",
    "AstridTimeoutError": "_errors",
    "BadInputError": "_errors",
    "BudgetDenied": "_errors",
    "CapabilityDenied": "_errors",
    "ConfigError": "_errors",
    "FrontendUnavailable": "_errors",
    "NotFoundError": "_errors",
    "PolicyDenied": "_errors",
    "SecurityDenied": "_errors",
    "StorageError": "_errors",
    "VerificationError": "_errors",
    "WorkspaceDenied": "_errors",
    "ALL_APPROVAL_OPTIONS": "_frontend",
    "ApprovalDecision": "_frontend",
    "ApprovalOption": "_frontend",
    "ApprovalRequest": "_frontend",
    "ElicitationRequest": "_frontend",
    "ElicitationResponse": "_frontend",
    "Frontend": "_frontend",
    "UrlElicitationRequest": "_frontend",
    "UserInput": "_frontend",
    "Authorization": "_guard",
    "AuthorizationProof": "_guard",
    "DenialLayer": "_guard",
    "Guard": "_guard",
    "ProofKind": "_guard",
    "AuditEntryId": "_ids",
    "CapsuleId": "_ids",
    "RequestId": "_ids",
    "SessionId": "_ids",
    "TokenId": "_ids",
    "TypedId": "_ids",
    "JsonObject": "_json",
    "JsonValue": "_json",
    "MessageTrust": "_messages",
    "TaggedMessage": "_messages",
    "Permission": "_permissions",
    "RiskLevel": "_risk",
    "AddressKind": "net",
    "classify_host": "net",
    "classify_ip": "net",
    "is_public_ip": "net",
    "non_public_addresses": "net",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'astrid_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"astrid_core.{module}"), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


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
