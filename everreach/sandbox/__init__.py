"""The local Meta Graph API sandbox (see ``core`` for the plug-in contract and README.md)."""

from everreach.sandbox.core import Sandbox, SandboxConfig, create_app

__all__ = ["Sandbox", "SandboxConfig", "create_app"]
