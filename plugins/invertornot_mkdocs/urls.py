"""Where an `<img src>` of a rendered MkDocs page points: a file of the site, or a reason why not.

The HTML that `on_page_content` sees has its Markdown image links already rewritten by MkDocs
(`_RelativePathTreeprocessor`) to be relative to the page's *URL*, not to its Markdown file:
with `use_directory_urls`, `guide/setup.md` is served at `guide/setup/`, so its
`![](img/a.png)` reads `../img/a.png`. Raw HTML `<img>` tags are not rewritten, and a browser
resolves them against the same URL. So every relative src is resolved against the page's URL
folder, exactly as a browser would, and then mapped back to the file it publishes.
"""
from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Iterable
from urllib.parse import unquote

from invertornot_ssg.pages import Resolved, Resolver
from invertornot_ssg.sitedir import SiteResolver

if TYPE_CHECKING:
    from mkdocs.structure.files import File


def page_url_dir(url: str) -> str:
    """The folder (site-relative, no slashes at the ends) that a page URL's relative links start from:
    `guide/setup/` -> `guide/setup`, `guide/setup.html` -> `guide`, `` (the home page) -> ``."""
    return posixpath.dirname(unquote(url).lstrip("/"))


class SiteFiles:
    """Resolves image URLs of one build's pages to files in docs_dir (or, for files another plugin
    or the theme adds to the build, to the file MkDocs copies into the site)."""

    def __init__(self, docs_dir: str | os.PathLike[str], site_url: str | None, files: Iterable[File] = ()):
        self.docs_dir = Path(os.path.abspath(docs_dir))
        # site_url's path (`https://example.org/docs/` -> `/docs/`) is stripped from site-absolute srcs.
        self.site = SiteResolver(self.docs_dir, [site_url] if site_url else [])
        self.by_dest = {f.dest_uri: f for f in files}

    def for_page(self, page_url: str) -> Resolver:
        page_dir = page_url_dir(page_url)
        return lambda src: self.resolve(src, page_dir)

    def resolve(self, src: str, page_dir: str) -> Resolved | None:
        """None: not ours (remote, data URI, the page itself). A `problem`: warned about, never read."""
        resolved = self.site.resolve(src, page_dir)
        if resolved is None or resolved.problem is None:
            return resolved
        key = resolved.key
        if key.startswith(("../", "/")) or key == ".." or os.path.lexists(self.docs_dir / key):
            return resolved  # outside the site, a directory, a link leading out: refused as it is
        file = self.by_dest.get(key)
        if file is None:
            return resolved  # missing
        if not file.abs_src_path:
            return None  # generated in memory by another plugin: nothing on disk to look at
        return Resolved(Path(file.abs_src_path), key) if os.path.isfile(file.abs_src_path) else resolved
