"""The Astrid security interceptor: policy, capabilities, budget, approval, audit."""

__all__: list[str] = []
