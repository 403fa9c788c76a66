"""The plugin's options: exactly the fields and defaults of `invertornot_ssg.settings.Settings`
(tests/test_mkdocs_plugin.py keeps the two in sync). Ranges and class names are checked by
`Settings` itself when the plugin builds one in `on_config`."""
from __future__ import annotations

from mkdocs.config import base
from mkdocs.config import config_options as c


class _Number(c.OptionallyRequired[float]):
    """A number; an integer is fine (`threshold: 1`)."""

    def run_validation(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise base.ValidationError(f"Expected a number but received: {value!r}")
        return float(value)


class InvertOrNotConfig(base.Config):
    enabled = c.Type(bool, default=True)
    store = c.Type(str, default=".invertornot")
    model = c.Type(str, default="efficientnet-lite0")
    head = c.Type(str, default="")
    overrides = c.Type(str, default="invertornot.yml")
    write_overrides = c.Type(bool, default=True)
    threshold = _Number(default=0.5)
    unsure = _Number(default=0.2)
    photo_region = _Number(default=0.2)
    class_invert = c.Type(str, default="invert")
    class_keep = c.Type(str, default="invert-not")
    class_invert_auto = c.Type(str, default="invert-auto")
    class_keep_auto = c.Type(str, default="invert-not-auto")
    css = c.Type(bool, default=True)
    dark_selectors = c.ListOfItems(c.Type(str), default=["auto"])  # auto: read the theme
    background = c.Type(str, default="#ffffff")
    backdrop = c.Type(str, default="#ffffff")
    remote = c.Type(bool, default=False)
    remote_allow_private = c.Type(bool, default=False)
    remote_timeout = _Number(default=10.0)
