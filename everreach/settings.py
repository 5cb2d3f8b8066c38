"""The settings layer: every environment variable the project reads, typed and validated.

One `pydantic-settings` class per domain, each next to the code it configures:

| class | module | variables |
| --- | --- | --- |
| `WarehouseSettings`, `BISettings` | `everreach.warehouse.settings` | `DATABASE_URL`, `EVERREACH_HOME`, … |
| `GraphSettings` | `everreach.meta.settings` | `META_GRAPH_API_*`, `META_ACCESS_TOKEN`, `META_APP_SECRET` |
| `AdsSettings` | `everreach.ads.settings` | `META_AD_ACCOUNT_IDS`, `EVERREACH_ADS_*` |
| `OrganicSettings` | `everreach.organic.settings` | `EVERREACH_ORGANIC_*` |
| `CapiSettings` | `everreach.capi.settings` | `META_PIXEL_ID`, `META_CAPI_*` |
| `ReceiverSettings` | `everreach.messaging.settings` | `EVERREACH_RECEIVER_*`, webhook secrets |
| `SandboxSettings` | `everreach.sandbox.settings` | `META_SANDBOX_APP_SECRET` |

How to declare a setting: a field whose default is `setting("VARIABLE", default, "purpose")`.
`Cls.from_env()` reads the process environment (`Cls.from_env(mapping)` a given one);
`Cls(**fields)` builds from values alone, like a dataclass, reading no environment — what tests
and callers with explicit values want. Values are stripped and an empty value means unset.
Secrets are `SecretStr` (never shown by `repr`, logs or error messages). A bad value raises
`SettingError` naming the variable and what is expected, at start-up rather than deep inside a
library. `registry()` lists every variable of every class: the README's settings table is
checked against it (`tests/test_settings_documented.py`), `markdown_table()` renders it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = [
    "EverReachSettings",
    "Invalid",
    "cron_expression",
    "env_value",
    "Setting",
    "SettingError",
    "markdown_table",
    "named_token",
    "project_root",
    "registry",
    "setting",
]


class SettingError(ValueError):
    """A setting (environment variable) is missing or malformed."""

    def __init__(self, name: str, problem: str, expected: str | None = None) -> None:
        self.name = name
        self.problem = problem
        self.expected = expected
        message = f"setting {name}: {problem}"
        if expected:
            message += f" (expected {expected})"
        super().__init__(message)


class Invalid(ValueError):
    """Raised by a field validator: what is wrong, and what is expected instead.

    The settings class turns it into a :class:`SettingError` naming the variable.
    """

    def __init__(self, problem: str, expected: str | None = None) -> None:
        self.problem = problem
        self.expected = expected
        super().__init__(problem)


def setting(
    variable: str,
    default: Any = None,
    purpose: str = "",
    *,
    expected: str | None = None,
    documented_default: str | None = None,
    repr: bool = True,  # noqa: A002 - mirrors pydantic's Field(repr=...)
) -> Any:
    """A field read from environment variable ``variable``.

    ``expected`` is shown when a value is refused; ``documented_default`` is how the README
    writes a default that is computed (a folder) or not a plain string (a tuple).
    """
    return FieldInfo(
        default=default,
        validation_alias=variable,
        description=purpose,
        repr=repr,
        json_schema_extra={"expected": expected, "documented_default": documented_default},
    )


#: The environment `from_env` reads from, for the duration of one construction.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("everreach_settings_environ")


class _EnvironmentSource(PydanticBaseSettingsSource):
    """Each field's variable from a mapping, stripped; empty means unset. Values stay
    strings, so every parse happens in the field's own validators."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raw = self._environ.get(str(field.validation_alias))
        value = raw.strip() if raw is not None else ""
        return (value or None), str(field.validation_alias), False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            if field.validation_alias is None:  # a knob set in code, not the environment
                continue
            value, variable, _ = self.get_field_value(field, name)
            if value is not None:
                values[variable] = value
        return values


class EverReachSettings(BaseSettings):
    """Base of every settings class (see the module docstring)."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        str_strip_whitespace=True,
    )

    #: The exception type raised for a bad value (a subclass of `SettingError`).
    error_class: ClassVar[type[SettingError]] = SettingError

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise type(self)._setting_error(exc) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get(None)
        if environ is None:
            return (init_settings,)
        return (init_settings, _EnvironmentSource(settings_cls, environ))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Settings from ``env`` (default: the process environment); ``overrides`` (by field
        name) win over the environment."""
        token = _ENVIRON.set(os.environ if env is None else env)
        try:
            return cls(**overrides)
        finally:
            _ENVIRON.reset(token)

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable behind ``field``."""
        return str(cls.model_fields[field].validation_alias)

    @classmethod
    def _setting_error(cls, exc: ValidationError) -> SettingError:
        error = exc.errors(include_url=False)[0]
        loc = str(error["loc"][0]) if error["loc"] else ""
        field = cls.model_fields.get(loc) or next(
            (f for f in cls.model_fields.values() if f.validation_alias == loc), None
        )
        variable = str(field.validation_alias) if field is not None else loc
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, SettingError):
            return cause
        if isinstance(cause, Invalid):
            return cls.error_class(variable, cause.problem, cause.expected)
        extra = (field.json_schema_extra if field is not None else None) or {}
        secret = field is not None and _is_secret(field)
        shown = "" if secret else f"{error.get('input')!r}: "
        problem = shown + str(error["msg"]).removeprefix("Value error, ")
        return cls.error_class(variable, problem, extra.get("expected"))  # type: ignore[union-attr]


def secret_value(value: SecretStr | str | None) -> str | None:
    """The clear text of an optional secret."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def no_whitespace_secret(value: SecretStr | None) -> SecretStr | None:
    """Validator for tokens and secrets: inner whitespace means a paste went wrong."""
    if value is not None and any(c.isspace() for c in value.get_secret_value()):
        raise Invalid("contains whitespace (value not shown)", "the secret alone")
    return value


def cron_expression(value: str) -> str:
    """Validator for schedules: a five-field cron expression (checked by croniter, the
    parser Dagster itself vendors)."""
    from croniter import croniter

    fields = value.split()
    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):
        raise Invalid(f"{value!r} is not a cron expression", "five fields, e.g. '0 4 * * *'")
    return " ".join(fields)


def named_token(
    variable: str | None, what: str, env: Mapping[str, str] | None = None
) -> str | None:
    """The token held by environment variable ``variable`` — the name a
    `meta_platform_config.token_env_var` row gives (None when ``variable`` is None).

    A named but unset variable is a setting error naming it (never a value). Ads, organic
    and the send endpoints all look their per-account tokens up here.
    """
    if not variable:
        return None
    value = env_value(variable, env)
    if value is None:
        raise SettingError(variable, f"is not set (the access token of {what})", "an access token")
    return value


def env_value(variable: str, env: Mapping[str, str] | None = None) -> str | None:
    """A variable whose *name* is data (a config row, a CLI option), stripped; empty is None."""
    value = (os.environ if env is None else env).get(variable, "").strip()
    return value or None


def project_root() -> Path:
    """The repository root (where pyproject.toml lives), for project-local state."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


# ---------------------------------------------------------------------------- registry
#: Modules that define the settings classes, in the README table's order.
_MODULES = (
    "everreach.warehouse.settings",
    "everreach.meta.settings",
    "everreach.ads.settings",
    "everreach.organic.settings",
    "everreach.capi.settings",
    "everreach.messaging.settings",
    "everreach.sandbox.settings",
)


@dataclass(frozen=True)
class Setting:
    """One environment variable, as the README documents it."""

    name: str
    default: str | None
    purpose: str
    secret: bool
    owner: str
    #: The default is a value (shown as code), not a description of a computed one.
    literal_default: bool


def _is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())


def env_text(value: Any) -> str | None:
    """A default as it would be written in the environment (None: no default)."""
    if value is None or value == () or value == "" or value is Ellipsis:
        return None
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def _documented_default(field: FieldInfo) -> tuple[str | None, bool]:
    """(text, literal): a computed default is described in prose, a literal one is the value
    as the environment would write it."""
    extra = field.json_schema_extra or {}
    prose = extra.get("documented_default")  # type: ignore[union-attr]
    if prose is not None:
        return str(prose), False
    return env_text(field.default), True


def settings_classes() -> list[type[EverReachSettings]]:
    """Every settings class, in documentation order (imports each owner module)."""
    classes: list[type[EverReachSettings]] = []
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, EverReachSettings)
                and value.__module__ == module_name
            ):
                classes.append(value)
    return classes


def _iter_settings() -> Iterator[Setting]:
    seen: set[str] = set()
    for cls in settings_classes():
        for field in cls.model_fields.values():
            if field.validation_alias is None:
                continue
            name = str(field.validation_alias)
            if name in seen:  # shared variables (DATABASE_URL, META_APP_SECRET) listed once
                continue
            seen.add(name)
            default, literal = _documented_default(field)
            yield Setting(
                name, default, field.description or "", _is_secret(field), cls.__name__, literal
            )


def registry() -> tuple[Setting, ...]:
    """Every environment variable the project reads, once each."""
    return tuple(_iter_settings())


def markdown_table() -> str:
    """The README's settings table, rendered from the registry."""
    lines = ["| variable | default | what it is for |", "| --- | --- | --- |"]
    for s in registry():
        default = s.default if s.default is not None else "—"
        if s.literal_default and s.default is not None:
            default = f"`{s.default}`"
        purpose = s.purpose + (" Secret." if s.secret else "")
        lines.append(f"| `{s.name}` | {default} | {purpose} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m everreach.settings: print the README table
    # Through the package, so the classes found are the ones the domain modules subclass.
    from everreach import settings as _settings

    print(_settings.markdown_table())
