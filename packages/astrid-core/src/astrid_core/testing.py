"""Test kit shared by every package: one scripted person at a frontend, one public-surface check.

``ScriptedFrontend`` is a real implementation of the ``Frontend`` protocol whose "person" is a
script: it answers approvals with ``answers`` in order (then ``then``), answers forms with
``forms`` in order (then "cancel"), and records everything it was asked and shown. It replaces
the hand-written doubles each package's tests used to carry.

``public_surface_problems`` checks a package the way httpx's test suite checks its own: each
public module's ``__all__`` names exactly the public names the module defines.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field

from ._errors import FrontendUnavailable
from ._frontend import (
    ApprovalDecision,
    ApprovalOption,
    ApprovalRequest,
    ElicitationRequest,
    ElicitationResponse,
    UrlElicitationRequest,
    UserInput,
)
from ._json import JsonObject

__all__ = ["ScriptedFrontend", "public_surface_problems"]


@dataclass
class ScriptedFrontend:
    """A scripted person at a frontend (implements ``astrid_core.Frontend``).

    ``answers``: approval options, used in order; once they run out every question gets
    ``then``. ``present=False``: nobody is there (``FrontendUnavailable``, so the runtime
    defers). ``forms``: elicitation answers in order, each an action ("decline", "cancel") or
    the content to accept; "cancel" once they run out. ``inputs``: what ``receive_input``
    returns, in order, then None.
    """

    answers: list[ApprovalOption] = field(default_factory=list[ApprovalOption])
    then: ApprovalOption = ApprovalOption.DENY
    present: bool = True
    decided_by: str | None = None
    deny_always: bool = False
    reason: str | None = None
    forms: list[str | JsonObject] = field(default_factory=list[str | JsonObject])
    inputs: list[str] = field(default_factory=list[str])
    asked: list[ApprovalRequest] = field(default_factory=list[ApprovalRequest])
    elicited: list[ElicitationRequest] = field(default_factory=list[ElicitationRequest])
    urls: list[UrlElicitationRequest] = field(default_factory=list[UrlElicitationRequest])
    statuses: list[str] = field(default_factory=list[str])
    errors: list[str] = field(default_factory=list[str])

    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        if not self.present:
            raise FrontendUnavailable("nobody is at the scripted frontend")
        self.asked.append(request)
        option = self.answers.pop(0) if self.answers else self.then
        return ApprovalDecision(
            request_id=request.request_id,
            option=option,
            reason=self.reason,
            deny_always=self.deny_always,
            decided_by=self.decided_by,
        )

    async def elicit(self, request: ElicitationRequest) -> ElicitationResponse:
        if not self.present:
            raise FrontendUnavailable("nobody is at the scripted frontend")
        self.elicited.append(request)
        answer = self.forms.pop(0) if self.forms else "cancel"
        if isinstance(answer, dict):
            return ElicitationResponse(
                request_id=request.request_id, action="accept", content=answer
            )
        action = "decline" if answer == "decline" else "cancel"
        return ElicitationResponse(request_id=request.request_id, action=action)

    async def elicit_url(self, request: UrlElicitationRequest) -> None:
        if not self.present:
            raise FrontendUnavailable("nobody is at the scripted frontend")
        self.urls.append(request)

    def show_status(self, message: str) -> None:
        self.statuses.append(message)

    def show_error(self, message: str) -> None:
        self.errors.append(message)

    async def receive_input(self) -> UserInput | None:
        return UserInput(text=self.inputs.pop(0)) if self.inputs else None


def public_surface_problems(package: str) -> list[str]:
    """For ``package`` and each of its public modules (no leading underscore in the path):
    names in ``__all__`` that do not exist, and public classes or functions defined in the
    module that ``__all__`` leaves out. Empty when the public surface is what ``__all__`` says.
    """
    root = importlib.import_module(package)
    names = [package]
    if hasattr(root, "__path__"):
        names += [
            info.name
            for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")
            if not any(part.startswith("_") for part in info.name.split("."))
            and not info.name.endswith("__main__")
        ]
    problems: list[str] = []
    for name in names:
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            problems.append(f"{name}: no __all__")
            continue
        problems += [
            f"{name}.__all__ names {n!r}, which does not exist"
            for n in exported
            if not hasattr(module, n)
        ]
        for attr, value in vars(module).items():
            if attr.startswith("_") or attr in exported:
                continue
            defined_here = getattr(value, "__module__", None) == name
            if defined_here and (inspect.isclass(value) or inspect.isfunction(value)):
                problems.append(f"{name}.{attr} is public but not in __all__")
    return problems
