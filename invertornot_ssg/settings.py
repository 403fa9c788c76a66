"""One settings schema for both front doors (MkDocs config, Pelican INVERTORNOT dict)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping

from .errors import ConfigError

# "auto": read the theme (themes.py). Any other list names the selectors and always wins.
DEFAULT_DARK_SELECTORS = ("auto",)
DEFAULT_BACKDROP = "#ffffff"
PHOTO_REGION = 0.2  # see photoregions.py; chosen held out by source (docs/src/quality.md)


@dataclass(frozen=True)
class Settings:
    """Every option the plugins share. Paths are as the user wrote them; adapters resolve
    them against the site's config file before handing them to the core."""

    enabled: bool = True
    store: str = ".invertornot"
    model: str = "efficientnet-lite0"
    head: str = ""  # path to a head file; empty: the store's newest head, else the shipped default
    overrides: str = "invertornot.yml"
    write_overrides: bool = True  # record every decision in the overrides file after a build
    threshold: float = 0.5  # p_invert at or above this inverts
    unsure: float = 0.2  # |p_invert - threshold| below this is unsure: kNN, then keep
    photo_region: float = PHOTO_REGION  # photographed share from which an automatic invert keeps; 0: off
    class_invert: str = "invert"
    class_keep: str = "invert-not"
    class_invert_auto: str = "invert-auto"
    class_keep_auto: str = "invert-not-auto"
    css: bool = True
    dark_selectors: tuple[str, ...] = DEFAULT_DARK_SELECTORS
    background: str = "#ffffff"  # page colour that transparent images are composited on
    # Behind kept images whose ink would vanish on the dark page; "none" (or "") turns it off.
    backdrop: str = DEFAULT_BACKDROP
    remote: bool = False  # fetch and classify http(s) images (cached in <store>/remote)
    remote_allow_private: bool = False  # let remote images come from loopback/private/link-local addresses
    remote_timeout: float = 10.0  # seconds for one remote image, redirects and download included

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold: must be between 0 and 1, got {self.threshold!r}")
        if not 0.0 <= self.unsure <= 0.5:
            raise ConfigError(f"unsure: must be between 0 and 0.5, got {self.unsure!r}")
        if not 0.0 <= self.photo_region <= 1.0:
            raise ConfigError(f"photo_region: must be between 0 and 1 (0: off), got {self.photo_region!r}")
        for name in ("class_invert", "class_keep", "class_invert_auto", "class_keep_auto"):
            value = getattr(self, name)
            if not value or any(c.isspace() for c in value):
                raise ConfigError(f"{name}: must be one CSS class name, got {value!r}")
        if len({self.class_invert, self.class_keep, self.class_invert_auto, self.class_keep_auto}) != 4:
            raise ConfigError("class names: the four class names must differ")
        if not 0.0 < self.remote_timeout <= 600.0:
            raise ConfigError(f"remote_timeout: must be more than 0 and at most 600 seconds, got {self.remote_timeout!r}")
        if self.backdrop.strip().lower() not in ("", "none", "off", "false"):
            from .images import parse_color

            try:
                parse_color(self.backdrop)
            except ConfigError as exc:
                raise ConfigError(f"backdrop: {exc}; or 'none' for no backdrop") from None
        if not self.model:
            raise ConfigError("model: must name an embedder, e.g. 'efficientnet-lite0'")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "settings") -> "Settings":
        """Build from a plain dict (Pelican's INVERTORNOT); unknown keys are an error naming them."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
        clean: dict[str, Any] = {}
        for key, value in values.items():
            default = known[key].default
            clean[key] = _coerce(key, value, default, source)
        return cls(**clean)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# What each option means, for users: the documentation's configuration reference is generated from
# this and the defaults above (docs/hooks.py), and a test checks that every option has its line.
OPTION_HELP: dict[str, str] = {
    "enabled": "Off: the plugin does nothing and the output is what the generator alone writes. "
               "From the environment in MkDocs: `enabled: !ENV [INVERTORNOT, true]`.",
    "store": "Folder of the embedding store: what can be regenerated (embeddings, image statistics, "
             "cached decisions). Several sites, MkDocs and Pelican, can share one. Ignore it in git.",
    "model": "Embedder: `efficientnet-lite0`, or `clip:<arch>/<pretrained-tag>` or `clip:<arch>@<checkpoint>` "
             "(needs the `clip` extra).",
    "head": "A head file (`.skops`) to decide with. Empty: this site's head from `retrain` (beside the "
            "overrides file) if there is one, else the shipped default.",
    "overrides": "The overrides file: your labels and the last automatic decisions, the site's training set. "
                 "Commit it. Empty: none.",
    "write_overrides": "After each build, record its decisions in the overrides file.",
    "threshold": "An image with `p_invert` at or above this is inverted.",
    "unsure": "Within this distance of `threshold` the head is unsure: labeled neighbours decide, else keep.",
    "photo_region": "When photographed tiles cover at least this share of an image the model would invert, "
                    "it is kept: a photograph in a screenshot, a product shot on white. `0`: off.",
    "class_invert": "Class for \"invert\": set by authors, and written for human decisions.",
    "class_keep": "Class for \"keep\": set by authors, and written for human decisions.",
    "class_invert_auto": "Class written when the model decides to invert.",
    "class_keep_auto": "Class written when the model decides to keep.",
    "css": "Add the stylesheet to the site and link it from every page.",
    "dark_selectors": "When the stylesheet applies. `auto`: read from the theme (Material's palette, MkDocs' "
                      "`color_mode`, the CSS of Pelican's theme, the built pages for `apply`). Otherwise CSS "
                      "selectors of your theme's dark mode, or media queries, which always win; `[]`: never.",
    "backdrop": "Colour behind kept transparent images whose dark ink would vanish on the dark page; "
                "`none`: no backdrop.",
    "background": "Page colour that transparent images are composited on before they are classified.",
    "remote": "Fetch and classify `http(s)` images (cached in the store), with the safeguards of the "
              "robustness page.",
    "remote_allow_private": "Allow remote images on loopback, private or link-local addresses.",
    "remote_timeout": "Seconds for one remote image, redirects and download included.",
}


def option_names() -> list[str]:
    return [f.name for f in fields(Settings)]


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    where = f"{source}: {key}"
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.strip().lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(default, tuple):
        if isinstance(value, str):
            return (value,)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value
