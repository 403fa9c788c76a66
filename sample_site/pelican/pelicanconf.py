"""Pelican sample for invertornot-ssg: `pelican content -s pelicanconf.py` from this folder."""
AUTHOR = "invertornot-ssg"
SITENAME = "invertornot-ssg on Pelican"
# Absolute, as many blogs keep it; image URLs that start with it resolve to files in output/.
SITEURL = "https://example.org/blog"
RELATIVE_URLS = True  # so output/ can be browsed from disk; a publishconf.py would set False

PATH = "content"
STATIC_PATHS = ["images"]
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
DEFAULT_PAGINATION = False

FEED_ALL_ATOM = None
CATEGORY_FEED_ATOM = None
TRANSLATION_FEED_ATOM = None
AUTHOR_FEED_ATOM = None
AUTHOR_FEED_RSS = None

PLUGINS = ["invertornot"]
# The same options as the MkDocs plugin. Relative paths resolve against the folder `pelican` runs in
# (this one): the store is shared with the MkDocs sample, so images both use are embedded once.
INVERTORNOT = {"store": "../.invertornot"}
