"""Which connector serves which provider name.

Connector modules register themselves on import; :func:`get` imports the known modules
lazily so that a provider's dependencies load only when a source uses it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contactsync.connectors.base import Capabilities, Connector, ConnectorConfig, ConnectorContext
from contactsync.errors import ConfigError

_MODULES = {
    "sql": "contactsync.connectors.sql",
    "constantcontact": "contactsync.connectors.constantcontact",
    "memory": "contactsync.connectors.memory",
    "mailchimp": "contactsync.connectors.mailchimp",
}


@dataclass(frozen=True)
class Provider:
    name: str
    label: str
    config: type[ConnectorConfig]
    capabilities: Capabilities
    factory: Callable[[Any, ConnectorContext], Connector]

    def parse_config(self, values: Mapping[str, Any]) -> ConnectorConfig:
        from pydantic import ValidationError

        from contactsync.errors import FieldProblem, invalid

        try:
            return self.config.model_validate(dict(values))
        except ValidationError as e:
            problems = [
                FieldProblem(".".join(str(p) for p in err["loc"]), err["msg"], "E100") for err in e.errors()
            ]
            raise invalid(problems, f"the {self.label} settings are invalid: {problems[0].message}") from None

    def create(self, config: ConnectorConfig, ctx: ConnectorContext) -> Connector:
        return self.factory(config, ctx)


_PROVIDERS: dict[str, Provider] = {}


def register(provider: Provider) -> None:
    _PROVIDERS[provider.name] = provider


def get(name: str) -> Provider:
    if name not in _PROVIDERS and name in _MODULES:
        importlib.import_module(_MODULES[name])
    try:
        return _PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(_MODULES))
        raise ConfigError(f"unknown provider {name!r}; known providers: {known}", code="E100") from None


def names() -> list[str]:
    return sorted(_MODULES)
