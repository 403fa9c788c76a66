"""Exception classes of the core; messages name the file and key at fault."""


class InvertOrNotError(Exception):
    """Base class: adapters translate it (MkDocs PluginError, Pelican log)."""


class ConfigError(InvertOrNotError):
    """A setting has a wrong type or value."""


class OverridesError(InvertOrNotError):
    """The overrides YAML cannot be read or written; nothing was overwritten."""


class StoreError(InvertOrNotError):
    """The embedding store cannot be opened or written (e.g. disk full)."""


class ModelUnavailableError(InvertOrNotError):
    """An embedder's weights or package are missing; the message says how to provide them."""


def shorten(text: str, limit: int = 200) -> str:
    """`text` cut to about `limit` characters for a message: a 100 KB `src` must not make a 200 KB log line."""
    if len(text) <= limit:
        return text
    return f"{text[:limit - 40]}… ({len(text):,} characters)"
