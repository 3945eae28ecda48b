"""astrid-capabilities: signed, attenuable capability tokens checked on every use.

A ``CapabilityToken`` grants permissions on a ``ResourcePattern``; it is Ed25519-signed by the
runtime key, optionally narrowed by caveats, and can be attenuated for a sub-agent. The
``CapabilityStore`` re-verifies signature, expiry, revocation, single-use and parent chain on
every lookup.
"""

from astrid_core import Permission

from ._caveats import (
    Absent,
    ArgEquals,
    ArgIn,
    ArgMatches,
    Caveat,
    CaveatRefusal,
    EachIn,
    MaxCalls,
    NotAfter,
    OnlyArgs,
    Range,
    caveat_from_json,
    caveat_refusal,
)
from ._handles import DirHandle, FileHandle, Handle, HandleTable
from ._pattern import ResourcePattern, check_resource_uri, escape_glob
from ._store import CapabilityProof, CapabilityStore, Explanation, TokenCheck
from ._token import (
    TOKEN_VERSION,
    CapabilityToken,
    TokenScope,
    WideningError,
    attenuation_problem,
    pattern_within,
)

__version__ = "0.1.0"

__all__ = [
    "Permission",
    "ResourcePattern",
    "check_resource_uri",
    "escape_glob",
    "CapabilityToken",
    "TokenScope",
    "TOKEN_VERSION",
    "WideningError",
    "attenuation_problem",
    "pattern_within",
    "Caveat",
    "ArgEquals",
    "ArgIn",
    "ArgMatches",
    "MaxCalls",
    "NotAfter",
    "EachIn",
    "Range",
    "Absent",
    "OnlyArgs",
    "CaveatRefusal",
    "caveat_from_json",
    "caveat_refusal",
    "CapabilityStore",
    "CapabilityProof",
    "Explanation",
    "TokenCheck",
    "DirHandle",
    "FileHandle",
    "Handle",
    "HandleTable",
    "__version__",
]
