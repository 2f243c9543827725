"""Settings, the config file, pool endpoints and model resolution.

Other subpackages import this package's names from here, never from its modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .file import (
    BatchDefaults as BatchDefaults,
    FlexConfig as FlexConfig,
    config_dir as config_dir,
    default_config_path as default_config_path,
    find_config as find_config,
    load_config as load_config,
)
from .limits import (
    QUOTA_FIELDS as QUOTA_FIELDS,
    QuotaOptions as QuotaOptions,
    check_redis_url as check_redis_url,
)
from .pool import (
    ENDPOINT_FIELDS as ENDPOINT_FIELDS,
    PoolEndpoint as PoolEndpoint,
    check_defaults as check_defaults,
    parse_endpoints as parse_endpoints,
)
from .resolve import (
    RequestDefaults as RequestDefaults,
    ResolvedModel as ResolvedModel,
    client_arguments as client_arguments,
    env_value as env_value,
    resolve_model as resolve_model,
)
from .settings import ClientSettings as ClientSettings, resolve_settings as resolve_settings

if TYPE_CHECKING:
    from .edit import (
        CONFIG_TEMPLATE as CONFIG_TEMPLATE,
        atomic_write as atomic_write,
        set_default_model as set_default_model,
        write_new_config as write_new_config,
    )

#: Writing files (the CLI's init and set-model, a price update): loaded on first use.
_EDIT = frozenset({"CONFIG_TEMPLATE", "atomic_write", "set_default_model", "write_new_config"})


def __getattr__(name: str) -> object:
    if name in _EDIT:
        from . import edit

        return getattr(edit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
