"""Debian sources: which packages, which files, and the category rule of each group."""
from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from common import (MAX_BYTES, RASTER_EXT, Candidate, load_pdf_page, load_raster, load_svg, log,
                    path_key, pdf_pages, sample)


@dataclass(frozen=True)
class Group:
    """A selection of files in one package, labeled by one rule (or the per-image heuristic)."""

    source: str                  # group name for held-out-by-source evaluation
    pkg: str
    globs: tuple                 # globs relative to the package root
    n: Optional[int]             # deterministic sample size, None = all
    category: str                # category when the rule labels it (or the heuristic's figure class)
    label: Optional[str]         # invert | keep | None (per-image heuristic, then viewed)
    licence: str
    exclude: str = ""            # regex on the package-relative path
    svg_width: int = 512
    jpeg: bool = False           # store opaque images as JPEG (photos)
    photo_category: str = "photo"  # category the heuristic gives to keep-like images
    pdf_pages: int = 0           # for PDFs: pages sampled per file
    one_per_name: bool = False   # icon themes: one file per icon name


def py_doc(pkg: str, licence: str = "BSD-3-Clause") -> str:
    """Licence of a documentation package's figures, as its copyright file gives it for `Files: *`."""
    return f"{licence} (project docs; see /usr/share/doc/{pkg}/copyright)"


GTK_DOC_NAVIGATION = r"/(up|down|left|right|home)(-insensitive)?\.png"  # gtk-doc's page arrows, not figures

GROUPS = [
    # ------------------------------------------------------------ keep: wallpapers, photos, art
    Group("deb:gnome-backgrounds", "gnome-backgrounds", ("usr/share/backgrounds/**/*.webp",
          "usr/share/backgrounds/**/*.svg", "usr/share/backgrounds/**/*.jpg", "usr/share/backgrounds/**/*.png"),
          None, "art", "keep", "CC-BY-SA-3.0", svg_width=1024, jpeg=True),
    Group("deb:mate-backgrounds", "mate-backgrounds", ("usr/share/backgrounds/**/*.jpg", "usr/share/backgrounds/**/*.png"),
          None, "photo", "keep", "GPL-2+ / CC-BY-SA-4.0", jpeg=True),
    Group("deb:sway-backgrounds", "sway-backgrounds", ("usr/share/backgrounds/**/*.png",), None, "art", "keep",
          "Expat / MIT-like", jpeg=True),
    Group("deb:desktop-base", "desktop-base", ("usr/share/desktop-base/*-theme/wallpaper/contents/images/1920x1080.svg",
          "usr/share/desktop-base/*-theme/login/background.svg", "usr/share/desktop-base/*-theme/grub/grub-16x9.png",
          "usr/share/desktop-base/*-theme/wallpaper/contents/images/1920x1080.png"),
          None, "art", "keep", "GPL-2+ / GPL-3+", svg_width=1024, jpeg=True),
    Group("deb:lxqt-themes", "lxqt-themes", ("usr/share/lxqt/wallpapers/*",), None, "art", "keep",
          "LGPL-2.1+ / CC-BY-SA-3.0", svg_width=1024, jpeg=True),
    Group("deb:xfdesktop4-data", "xfdesktop4-data", ("usr/share/backgrounds/**/*",), None, "art", "keep", "GPL-2+",
          svg_width=1024, jpeg=True),
    Group("deb:lomiri-wallpapers", "lomiri-wallpapers", ("usr/share/backgrounds/**/*",), None, "art", "keep",
          "CC-BY-SA-3.0 / CC-BY-4.0", jpeg=True),
    Group("deb:xplanet-images", "xplanet-images", ("usr/share/xplanet/images/*",), None, "photo", "keep",
          "GPL-2+ / NASA imagery", jpeg=True),
    Group("deb:opencv-data", "opencv-doc", ("usr/share/doc/opencv-doc/examples/data/*.jpg",
          "usr/share/doc/opencv-doc/examples/data/*.png"), None, "photo", None,
          "BSD-3-Clause / Apache-2.0 (OpenCV samples; see copyright)", jpeg=True),
    Group("deb:opencv-doc", "opencv-doc", ("usr/share/doc/opencv-doc/opencv4/html/**/*.jpg",
          "usr/share/doc/opencv-doc/opencv4/html/**/*.png"), 60, "diagram", None,
          "BSD-3-Clause / Apache-2.0 (OpenCV docs)", exclude=r"/search/|form_\d+|/bc_s|/nav_|/tab_|/sync_|/doc\.png|/folder|/closed|/open\.png|/splitbar|/arrow",
          jpeg=True),
    Group("deb:gimp-help-photos", "gimp-help-en", ("usr/share/gimp/2.0/help/en/images/**/*.jpg",), 70, "photo", None,
          "GFDL-1.2+", jpeg=True),
    Group("deb:gimp-help-ui", "gimp-help-en", ("usr/share/gimp/2.0/help/en/images/dialogs/*.png",
          "usr/share/gimp/2.0/help/en/images/menus/**/*.png", "usr/share/gimp/2.0/help/en/images/toolbox/*.png",
          "usr/share/gimp/2.0/help/en/images/preferences/*.png", "usr/share/gimp/2.0/help/en/images/filters/examples/*.png"),
          50, "screenshot", None, "GFDL-1.2+"),
    Group("deb:imagemagick-doc", "imagemagick-6-doc", ("usr/share/doc/imagemagick-6-common/html/images/*.jpg",
          "usr/share/doc/imagemagick-6-common/html/images/*.png", "usr/share/doc/imagemagick-6-common/html/images/*.gif"), 50, "diagram", None, "ImageMagick License"),
    Group("deb:gimp-data-patterns", "gimp-data", ("usr/share/gimp/2.0/patterns/**/*.png", "usr/share/gimp/2.0/patterns/**/*.jpg",
          "usr/share/gimp/2.0/images/*.png", "usr/share/gimp/2.0/images/*.jpg"), 30, "texture", "keep", "GPL-3+ / LGPL (gimp-data)",
          jpeg=True),
    Group("deb:tuxpaint-data", "tuxpaint-data", ("usr/share/tuxpaint/starters/*.png", "usr/share/tuxpaint/starters/*.jpg",
          "usr/share/tuxpaint/templates/*.jpg", "usr/share/tuxpaint/templates/*.png"), 40, "lineart", None, "GPL-2+",
          photo_category="photo", exclude=r"-back\.|_back\.|thumb"),
    Group("deb:dde-account-faces", "dde-account-faces", ("var/lib/AccountsService/icons/bigger/*.png",
          "var/lib/AccountsService/icons/*.png"), None, "photo", "keep", "GPL-3.0-or-later", one_per_name=True),
    Group("deb:openclipart", "openclipart-svg", ("usr/share/openclipart/svg/**/*.svg",), 130, "clipart", None,
          "public domain (Open Clip Art Library)", photo_category="clipart", svg_width=384),
    Group("deb:wesnoth-portraits", "wesnoth-1.16-data", ("usr/share/games/wesnoth/1.16/data/core/images/portraits/**/*.png",),
          40, "painting", "keep", "GPL-2+ (Battle for Wesnoth art; see copyright)", one_per_name=True),
    # Tux Paint's stamps: cut-out photographs, shaded and flat clipart, some black line art (per image).
    Group("deb:tuxpaint-stamps", "tuxpaint-stamps-default", ("usr/share/tuxpaint/stamps/**/*.png",), 60, "clipart", None,
          "GPL-2 (Tux Paint stamps)", photo_category="clipart", exclude=r"_back\.|-back\.|thumb"),
    # ------------------------------------------------------------ icons
    # Two more shaded themes beside Tango: glossy Oxygen and MATE's Tango-like icons (keep).
    Group("deb:oxygen-icons", "oxygen-icon-theme", ("usr/share/icons/oxygen/base/256x256/**/*.png",), 35, "icon", "keep",
          "LGPL-3+", one_per_name=True),
    Group("deb:mate-icons", "mate-icon-theme", ("usr/share/icons/mate/256x256/**/*.png",), 30, "icon", "keep",
          "LGPL-3+ or CC-BY-SA", one_per_name=True),
    Group("deb:tango-icons", "tango-icon-theme", ("usr/share/icons/Tango/scalable/**/*.svg",), 35, "icon", "keep",
          "public domain", svg_width=128, one_per_name=True),
    # Adwaita 43's 256x256 "legacy" PNGs are black symbolic glyphs (checked on contact sheets): invert
    Group("deb:adwaita-symbolic-png", "adwaita-icon-theme", ("usr/share/icons/Adwaita/256x256/legacy/*.png",
          "usr/share/icons/Adwaita/96x96/legacy/*.png"), 30, "lineart", "invert", "CC-BY-SA-4.0 / LGPL-3",
          one_per_name=True),
    # GIMP's Symbolic theme is light grey (#bebebe) for its dark UI: fine on a dark page as is, so keep
    Group("deb:gimp-symbolic", "gimp-data", ("usr/share/gimp/2.0/icons/Symbolic/scalable/**/*.svg",), 20, "icon", "keep",
          "CC-BY-SA-3.0 / GPL-3+ (GIMP icons)", svg_width=96),
    Group("deb:adwaita-symbolic", "adwaita-icon-theme", ("usr/share/icons/Adwaita/scalable/**/*.svg",), 30, "lineart", "invert",
          "CC-BY-SA-4.0 / LGPL-3", svg_width=96, one_per_name=True),
    Group("deb:breeze-actions", "breeze-icon-theme", ("usr/share/icons/breeze/actions/22/*.svg",), 30, "lineart", "invert",
          "LGPL-3+", svg_width=96),
    Group("deb:breeze-mimetypes", "breeze-icon-theme", ("usr/share/icons/breeze/mimetypes/64/*.svg",
          "usr/share/icons/breeze/apps/48/*.svg"), 25, "icon", "keep", "LGPL-3+", svg_width=128),
    Group("deb:numix-icons", "numix-icon-theme", ("usr/share/icons/Numix/64/mimetypes/*.svg", "usr/share/icons/Numix/64/places/*.svg",
          "usr/share/icons/Numix/64/devices/*.svg"), 25, "icon", "keep", "GPL-3+", svg_width=128),
    Group("deb:elementary-icons", "elementary-icon-theme", ("usr/share/icons/elementary/apps/128/*.svg",
          "usr/share/icons/elementary/mimes/128/*.svg", "usr/share/icons/elementary/places/128/*.svg",
          "usr/share/icons/elementary/actions/symbolic/*.svg", "usr/share/icons/elementary/status/symbolic/*.svg"),
          40, "icon", None, "GPL-3.0-or-later / CC0", svg_width=128, photo_category="icon"),
    # Paper: slate-grey (#4c5263) symbolic glyphs, between Adwaita's near-black and GIMP's light grey
    # (invert), and colourful flat app and device icons (keep).
    Group("deb:paper-symbolic", "paper-icon-theme", ("usr/share/icons/Paper/scalable/actions/*.svg",
          "usr/share/icons/Paper/scalable/status/*.svg"), 30, "lineart", "invert", "CC-BY-SA-3.0 / CC-BY-SA-4.0", svg_width=96,
          one_per_name=True),
    Group("deb:paper-icons", "paper-icon-theme", ("usr/share/icons/Paper/512x512/apps/*.png",
          "usr/share/icons/Paper/512x512/devices/*.png", "usr/share/icons/Paper/512x512/places/*.png"), 35, "icon", "keep",
          "CC-BY-SA-3.0 / CC-BY-SA-4.0"),
    # Papirus: dark-grey (#444) symbolic glyphs (invert) and flat colourful app icons (keep).
    Group("deb:papirus-symbolic", "papirus-icon-theme", ("usr/share/icons/Papirus/symbolic/actions/*.svg",
          "usr/share/icons/Papirus/symbolic/status/*.svg", "usr/share/icons/Papirus/symbolic/devices/*.svg"), 30, "lineart",
          "invert", "GPL-3", svg_width=96, one_per_name=True),
    Group("deb:papirus-apps", "papirus-icon-theme", ("usr/share/icons/Papirus/64x64/apps/*.svg",), 30, "icon", "keep",
          "GPL-3", svg_width=128),
    # ------------------------------------------------------------ invert: docs with figures
    Group("deb:lilypond-doc", "lilypond-doc", ("usr/share/doc/lilypond/html/**/*.png",), 50, "music", "invert",
          "GPL-3+ / GFDL", exclude=r"/pictures/|logo|/css/|-thumb|/icons?/"),
    Group("deb:sympy-doc-math", "python-sympy-doc", ("usr/share/doc/python-sympy-doc/html/_images/math/*.png",), 35, "text", "invert",
          py_doc("python-sympy-doc")),
    Group("deb:sympy-doc-plots", "python-sympy-doc", ("usr/share/doc/python-sympy-doc/html/modules/**/*.png",
          "usr/share/doc/python-sympy-doc/html/_images/*.png"), 25, "plot", None, py_doc("python-sympy-doc")),
    Group("deb:scipy-doc", "python-scipy-doc", ("usr/share/doc/python-scipy-doc/html/**/*.png",), 70, "plot", None,
          py_doc("python-scipy-doc"), exclude=r"/_static/|/_images/math/|-hires|\.hires|logo"),
    Group("deb:pandas-doc", "python-pandas-doc", ("usr/share/doc/python-pandas-doc/html/**/*.png",), 35, "plot", None,
          py_doc("python-pandas-doc"), exclude=r"/_static/|logo|-hires|\.hires"),
    Group("deb:statsmodels-doc", "python-statsmodels-doc", ("usr/share/doc/python-statsmodels-doc/html/**/*.png",), 35, "plot",
          None, py_doc("python-statsmodels-doc"), exclude=r"/_static/|logo|-hires|\.hires"),
    Group("deb:statsmodels-pdf", "python-statsmodels-doc", ("usr/share/doc/python-statsmodels-doc/html/**/*.pdf",), 10, "plot",
          None, py_doc("python-statsmodels-doc"), pdf_pages=1),
    Group("deb:sklearn-doc", "python-sklearn-doc", ("usr/share/doc/python-sklearn-doc/html/**/*.png",
          "usr/share/doc/python-sklearn-doc/html/**/*.jpg"), 80, "plot", None, py_doc("python-sklearn-doc"),
          exclude=r"/_static/|logo|/thumb|sphx_glr_.*_thumb|/binder|/testimonials"),
    Group("deb:astropy-doc", "python-astropy-doc", ("usr/share/doc/python-astropy-doc/html/**/*.png",), 40, "plot", None,
          py_doc("python-astropy-doc"), exclude=r"/_static/|logo|-hires|\.hires"),
    Group("deb:skimage-doc", "python-skimage-doc", ("usr/share/doc/python-skimage-doc/html/**/*.png",
          "usr/share/doc/python-skimage-doc/html/**/*.jpg"), 60, "plot", None, py_doc("python-skimage-doc"),
          exclude=r"/_static/|logo|_thumb|/thumb"),
    Group("deb:octave-doc", "octave-doc", ("usr/share/doc/octave/**/*.png",), None, "plot", None,
          "GPL-3+ (GNU Octave manual)"),
    Group("deb:octave-doc-pdf", "octave-doc", ("usr/share/doc/octave/**/*.pdf",), None, "text", None,
          "GPL-3+ (GNU Octave manual)", pdf_pages=3),
    Group("deb:gnuplot-doc", "gnuplot-doc", ("usr/share/doc/gnuplot/**/*.png", "usr/share/doc/gnuplot/**/*.svg"), None,
          "plot", None, "gnuplot licence"),
    Group("deb:gnuplot-doc-pdf", "gnuplot-doc", ("usr/share/doc/gnuplot/**/*.pdf",), None, "text", None,
          "gnuplot licence", pdf_pages=10),
    Group("deb:asymptote-doc", "asymptote-doc", ("usr/share/doc/asymptote-doc/**/*.png", "usr/share/doc/asymptote/**/*.png",
          "usr/share/info/**/*.png"), 35, "diagram", None, "LGPL-3+ (Asymptote docs)"),
    Group("deb:asymptote-doc-pdf", "asymptote-doc", ("usr/share/doc/asymptote-doc/**/*.pdf", "usr/share/doc/asymptote/**/*.pdf"),
          None, "text", None, "LGPL-3+ (Asymptote docs)", pdf_pages=2),
    Group("deb:graphviz-doc", "graphviz-doc", ("usr/share/doc/graphviz/**/*.png", "usr/share/doc/graphviz/**/*.gif",
          "usr/share/doc/graphviz/**/*.jpg"), 60, "diagram", None, "EPL-1.0 (Graphviz docs)"),
    Group("deb:gnome-user-docs", "gnome-user-docs", ("usr/share/help/C/**/*.png",), 45, "screenshot", None, "CC-BY-SA-3.0"),
    Group("deb:gnome-user-docs-svg", "gnome-user-docs", ("usr/share/help/C/**/*.svg",), 25, "diagram", None, "CC-BY-SA-3.0",
          svg_width=512, one_per_name=True),
    Group("deb:inkscape-tutorials", "inkscape-tutorials", ("usr/share/inkscape/tutorials/*.svg", "usr/share/inkscape/tutorials/*.png",
          "usr/share/inkscape/tutorials/*.jpg"), 25, "diagram", None, "GPL-2+ / CC-BY-SA (Inkscape tutorials)",
          exclude=r"tutorial-[a-z]+\.[a-z_]+\.svg$", svg_width=512),
    # Light-theme GTK screenshots of a finance program, many with coloured register rows and report
    # banners: kinds the set had few of (its gimp-help-ui dialogs with colour swatches were errors).
    Group("deb:gnucash-docs", "gnucash-docs", ("usr/share/help/C/gnucash-guide/figures/*.png",), 45, "screenshot", "invert",
          "GFDL-NIV-1.1+ (GnuCash Tutorial and Concepts Guide)"),
    # Small GTK demo windows, some showing a photograph or a big logo (labeled by what covers most).
    Group("deb:gnome-devel-demos", "gnome-devel-docs", ("usr/share/help/C/gnome-devel-demos/media/*.png",), 35,
          "screenshot", None, "CC-BY-SA-3.0 (GNOME platform demos)"),
    # KiCad's manual: light dialogs and menus beside dark schematic and circuit-board canvases.
    Group("deb:kicad-doc", "kicad-doc-en", ("usr/share/doc/kicad/help/en/images/*.png", "usr/share/doc/kicad/help/en/images/en/*.png"),
          45, "screenshot", None, "GPL-3+ (KiCad documentation)"),
    Group("deb:dia-doc", "dia-common", ("usr/share/doc/dia/html/en/graphics/*.png",), None, "screenshot", None,
          "GFDL-NIV-1.1+ (Dia manual)"),
    Group("deb:okular-doc", "okular", ("usr/share/doc/HTML/en/okular/*.png",), None, "screenshot", None,
          "GFDL-1.2+ (Okular handbook)"),
    # TeX Live's picture packages (TikZ, PSTricks, circuit and diagram macros): one page of each manual.
    Group("deb:texlive-pictures-doc", "texlive-pictures-doc", ("usr/share/doc/texlive-doc/**/*.pdf",), 40, "diagram", None,
          "LPPL / GPL / public domain (per package; see /usr/share/doc/texlive-doc)", pdf_pages=1),
    # KStars' handbook: light dialogs, dark-theme windows, sky photographs and dark-background plots.
    Group("deb:kstars-doc", "kstars-data", ("usr/share/doc/HTML/en/kstars/*.png", "usr/share/doc/HTML/en/kstars/*.jpg"), 50,
          "screenshot", None, "GFDL-1.2+ (KStars handbook)", jpeg=True),
    # Gnumeric's manual: spreadsheet windows, dialogs, charts and equations on white.
    Group("deb:gnumeric-doc", "gnumeric-doc", ("usr/share/help/C/gnumeric/figures/*.png",), 40, "screenshot", None,
          "GFDL-1.1+ / GPL-2+ (Gnumeric manual; see copyright)"),
    # GRASS GIS's manual: satellite photographs, maps in saturated colour ramps, line maps, plots, dialogs.
    Group("deb:grass-doc", "grass-doc", ("usr/share/doc/grass-doc/html/*.png", "usr/share/doc/grass-doc/html/*.jpg"), 50,
          "diagram", None, "GPL-2+ (GRASS GIS manual)", jpeg=True),
    # Kdenlive's handbook: dark-theme editor windows beside a few light ones.
    Group("deb:kdenlive-doc", "kdenlive-data", ("usr/share/doc/HTML/en/kdenlive/*.png",), None, "screenshot", None,
          "GFDL-1.2+ (Kdenlive handbook)"),
    # More distinct sources, since held-out accuracy grows with their number: wallpapers, flags and two more icon
    # themes; scientific and GUI manuals of many styles (light Motif, Tk, wx and GTK widgets and dialogs, plot
    # widgets, finite-element fields, ray-traced renders, cave maps, sequence charts, dark-theme DJ skins).
    Group("deb:plasma-wallpapers", "plasma-workspace-wallpapers", ("usr/share/wallpapers/*/contents/images/*",
          "usr/share/wallpapers/*/contents/images_dark/*"), 30, "art", "keep", "GPL-2+ / CC-BY-SA (see copyright)",
          exclude=r"/(1080x1920|720x1440)\.", jpeg=True),
    Group("deb:ukui-wallpapers", "ukui-wallpapers", ("usr/share/backgrounds/*",), None, "photo", "keep",
          "GPL-2+ / CC (see copyright)", jpeg=True),
    Group("deb:kgeography-flags", "kgeography-data", ("usr/share/kgeography/flags/*.png",), 25, "icon", "keep",
          "GPL-2+ / public domain flags (see copyright)"),
    Group("deb:moka-apps", "moka-icon-theme", ("usr/share/icons/Moka/64x64/apps/*.png",), 25, "icon", "keep",
          "CC-BY-SA-4.0 or GPL-3+"),
    Group("deb:gnome2-icons", "gnome-icon-theme", ("usr/share/icons/gnome/48x48/apps/*.png",
          "usr/share/icons/gnome/48x48/devices/*.png", "usr/share/icons/gnome/48x48/places/*.png",
          "usr/share/icons/gnome/48x48/mimetypes/*.png"), 25, "icon", "keep", "GPL-2+ / GPL-3+", one_per_name=True),
    Group("deb:kalzium-school", "kalzium-data", ("usr/share/kalzium/data/iconsets/school/*.svg",), 25, "clipart", None,
          "GPL-2.0-or-later (Kalzium)", svg_width=256),
    Group("deb:msc-generator-doc", "msc-generator-doc", ("usr/share/doc/msc-generator/html/*.png",), 30, "diagram", None,
          "GPL-3+ / MIT (see copyright)"),
    Group("deb:pyfai-doc", "python-pyfai-doc", ("usr/share/doc/python-pyfai-doc/html/_images/*",), 30, "plot", None,
          py_doc("python-pyfai-doc", "Expat"), jpeg=True),
    Group("deb:sasview-doc", "sasview-doc", ("usr/share/doc/sasview/html/_images/*",), 30, "plot", None,
          py_doc("sasview-doc"), jpeg=True),
    Group("deb:qutip-doc", "python-qutip-doc", ("usr/share/doc/python-qutip-doc/html/_images/*.png",), 30, "plot", None,
          py_doc("python-qutip-doc")),
    Group("deb:maxima-doc", "maxima-doc", ("usr/share/doc/maxima-doc/html/figures/*",), 30, "plot", None,
          "GPL-2 (Maxima manual)"),
    Group("deb:silx-doc", "python-silx-doc", ("usr/share/doc/python3-silx/html/_images/*",), 30, "screenshot", None,
          py_doc("python-silx-doc", "Expat"), jpeg=True),
    Group("deb:xraylarch-doc", "python-xraylarch-doc", ("usr/share/doc/python-xraylarch-doc/html/_images/*",), 30, "plot",
          None, py_doc("python-xraylarch-doc", "BSD-2-Clause"), jpeg=True),
    Group("deb:dtcwt-doc", "python-dtcwt-doc", ("usr/share/doc/python-dtcwt-doc/html/_images/*.png",), 20, "plot", None,
          py_doc("python-dtcwt-doc", "BSD-2-Clause")),
    Group("deb:hugin-help", "hugin-data", ("usr/share/hugin/xrc/data/help_en_EN/*",), 30, "screenshot", None,
          "GPL-2+ / GFDL (Hugin manual; see copyright)", jpeg=True),
    Group("deb:povray-doc", "povray-doc", ("usr/share/doc/povray/html/images/**/*",), 30, "diagram", None,
          "AGPL-3.0+ (POV-Ray docs)", photo_category="art", jpeg=True),
    Group("deb:featpost", "texlive-metapost-doc", ("usr/share/doc/texlive-doc/metapost/featpost/png/*.png",), 20, "diagram",
          None, "GPL (featpost)"),
    Group("deb:therion-doc", "therion-doc", ("usr/share/doc/therion/samples.doc/*.png",), 20, "diagram", None,
          "GPL-2+ (Therion)"),
    Group("deb:sqlite-doc", "sqlite3-doc", ("usr/share/doc/sqlite3/images/**/*",), 35, "diagram", None,
          "public domain (SQLite docs)", exclude=r"/foreignlogos/"),
    Group("deb:gtk3-doc", "libgtk-3-doc", ("usr/share/gtk-doc/html/gtk3/*.png",), 35, "screenshot", None,
          "LGPL-2.1+ (GTK docs)", exclude=GTK_DOC_NAVIGATION),
    Group("deb:wx-doc", "wx3.2-doc", ("usr/share/doc/wx3.2-doc/html/appear-*.png", "usr/share/doc/wx3.2-doc/html/overview_*.png"),
          35, "screenshot", None, "wxWindows Library Licence (wxWidgets docs)"),
    Group("deb:qwt-doc", "libqwt-doc", ("usr/share/doc/libqwt-doc/html/*.png",), 30, "plot", None, "Qwt License (LGPL-2.1 with exceptions)",
          exclude=r"inherit__graph|coll__graph|/(bc_s|bdwn|closed|open|doc|folder\w*|nav_\w|splitbar|sync_\w+|tab_\w)\.png"),
    Group("deb:ase-doc", "python-ase-doc", ("usr/share/doc/python-ase-doc/html/_images/*",), 35, "diagram", None,
          "LGPL-2.1+ (ASE docs)", jpeg=True),
    Group("deb:lmfit-doc", "python-lmfit-doc", ("usr/share/doc/python3-lmfit/html/_images/*",), 25, "plot", None,
          py_doc("python-lmfit-doc", "Expat")),
    Group("deb:sfepy-doc", "python-sfepy-doc", ("usr/share/doc/python-sfepy-doc/html/_images/*",), 25, "diagram", None,
          py_doc("python-sfepy-doc"), jpeg=True),
    Group("deb:fontforge-doc", "fontforge-doc", ("usr/share/doc/fontforge/_images/*",), 35, "screenshot", None,
          "GPL-3+ / BSD-3-Clause (FontForge docs)"),
    Group("deb:mixxx", "mixxx-data", ("usr/share/mixxx/skins/*/skin_preview*.png", "usr/share/mixxx/controllers/**/docs/*.png"),
          None, "screenshot", None, "GPL-2+ (Mixxx)", jpeg=True),
    Group("deb:visp-images", "visp-images-data", ("usr/share/visp-images-data/ViSP-images/**/*.png",
          "usr/share/visp-images-data/ViSP-images/**/*.jpg"), 20, "photo", None, "GPL-2+ / see copyright (ViSP test images)",
          exclude=r"/(mire-2|mbt|cube|ellipse-1|line)/", jpeg=True),
    Group("deb:tkgate-doc", "tkgate-doc", ("usr/share/tkgate/doc/fig/*",), 30, "diagram", None, "GPL-2+ (TkGate docs)"),
    # Kinds the held-out errors still point to: shaded icons and clipart, cartoon game art, isometric
    # tiles, astronomy images in light viewers, GUI manuals with plots.
    Group("deb:faenza-apps", "faenza-icon-theme", ("usr/share/icons/Faenza/apps/scalable/*.svg",), 25, "icon", "keep",
          "GPL-3+", svg_width=128, one_per_name=True),
    Group("deb:lxde-icons", "lxde-icon-theme", ("usr/share/icons/nuoveXT2/96x96/actions/*.png",
          "usr/share/icons/nuoveXT2/96x96/apps/*.png", "usr/share/icons/nuoveXT2/96x96/places/*.png"), 25, "icon", None,
          "LGPL-3+ (nuoveXT2)"),
    Group("deb:yaru-icons", "yaru-theme-icon", ("usr/share/icons/Yaru/48x48@2x/apps/*.png",
          "usr/share/icons/Yaru/48x48@2x/mimetypes/*.png"), 20, "icon", "keep", "CC-BY-SA-4.0 / GPL-3 (Yaru)"),
    Group("deb:hedgewars-art", "hedgewars-data", ("usr/share/games/hedgewars/Data/Graphics/*.png",), 30, "art", None,
          "GPL-2 / see copyright (Hedgewars)", photo_category="art"),
    Group("deb:frozen-bubble", "frozen-bubble-data", ("usr/share/games/frozen-bubble/gfx/*.png",
          "usr/share/games/frozen-bubble/gfx/*.jpg"), 25, "art", None, "GPL-2+ (Frozen Bubble)", photo_category="art"),
    Group("deb:lincity-tiles", "lincity-ng-data", ("usr/share/games/lincity-ng/images/tiles/*.png",), 25, "clipart", None,
          "GPL-2+ (LinCity-NG)", photo_category="art"),
    Group("deb:ktuberling", "ktuberling-data", ("usr/share/ktuberling/pics/*.svg", "usr/share/ktuberling/pics/*.svgz"),
          None, "clipart", None, "GPL-2+ (KTuberling)", svg_width=768),
    Group("deb:bioxtasraw-doc", "python-bioxtasraw-doc", ("usr/share/doc/python-bioxtasraw-doc/_images/*",), 35,
          "screenshot", None, "GPL-3+ (BioXTAS RAW docs)", jpeg=True),
    Group("deb:imexam-doc", "python-imexam-doc", ("usr/share/doc/python-imexam-doc/html/_images/*",), 30, "plot", None,
          py_doc("python-imexam-doc"), jpeg=True),
    Group("deb:pyresample-doc", "python-pyresample-doc", ("usr/share/doc/python-pyresample-doc/html/_images/*",), None,
          "plot", None, "LGPL-3+ (pyresample docs)", jpeg=True),
    Group("deb:lo-bullets", "libreoffice-common", ("usr/lib/libreoffice/share/gallery/bullets/*",), 20, "icon", None,
          "MPL-2.0 (LibreOffice gallery)"),
    Group("deb:tuxmath", "tuxmath-data", ("usr/share/tuxmath/images/**/*.png", "usr/share/tuxmath/images/**/*.jpg",
          "usr/share/tuxmath/images/**/*.svg"), 25, "clipart", None, "GPL-3+ (Tux Math)", photo_category="art", jpeg=True),
    Group("deb:tuxtype", "tuxtype-data", ("usr/share/tuxtype/images/**/*.png", "usr/share/tuxtype/images/**/*.jpg",
          "usr/share/tuxtype/images/**/*.svg"), 25, "clipart", None, "GPL-2+ (Tux Typing)", photo_category="art", jpeg=True),
    Group("deb:krita-data", "krita-data", ("usr/share/krita/patterns/*", "usr/share/krita/pics/*"), 20, "texture", None,
          "GPL-3+ (Krita)", photo_category="texture", jpeg=True),
    Group("deb:khangman", "khangman", ("usr/share/khangman/qml/**/*.png", "usr/share/doc/HTML/en/khangman/*.png"), 20,
          "lineart", None, "GPL-2+ (KHangMan)"),
    # Scribus ships each toolbar icon twice, for light and for dark themes: one source, so that a
    # held-out fold never trains on an icon's twin.
    Group("deb:scribus-icons", "scribus-data", ("usr/share/scribus/icons/1_5_1/*.png", "usr/share/scribus/icons/1_5_1_dark/*.png"),
          30, "lineart", None, "GPL-2+ (Scribus)"),
    # Siblings for the light-grey classic X11 dialogs (FontForge's Motif ones were the largest group of
    # held-out errors with no sibling source): Xaw, Tk, FOX, GTK 2 and Qt widgets and dialogs, statistics
    # tables, and dark-background schematic editors.
    Group("deb:xfig-doc", "xfig-doc", ("usr/share/doc/xfig/html/images/*",), 40, "screenshot", None,
          "xfig licence (permissive; see copyright)"),
    Group("deb:pmw-doc", "python-pmw-doc", ("usr/share/doc/python-pmw-doc/html/*.gif",), None, "screenshot", None,
          "Expat (Pmw docs)"),
    Group("deb:fox-doc", "libfox-1.6-doc", ("usr/share/doc/libfox-1.6-doc/html/screenshots/*",
          "usr/share/doc/libfox-1.6-doc/html/art/*"), 40, "screenshot", None, "LGPL-2.1 (FOX toolkit docs)", jpeg=True),
    Group("deb:tklib-doc", "tklib", ("usr/share/doc/tklib/html/**/*.png", "usr/share/doc/tklib/examples/**/*.png",
          "usr/share/doc/tklib/examples/**/*.gif"), 30, "screenshot", None, "Tcl/Tk licence (BSD-style; see copyright)"),
    Group("deb:gtk2-doc", "libgtk2.0-doc", ("usr/share/gtk-doc/html/gtk2/*.png",
          "usr/share/doc/libgtk2.0-doc/tutorial/images/*.png"), 40, "screenshot", None, "LGPL-2+ (GTK 2 docs)",
          exclude=GTK_DOC_NAVIGATION),
    Group("deb:qt5-widgets-doc", "qtbase5-doc-html", ("usr/share/qt5/doc/qtwidgets/images/*",), 50, "screenshot", None,
          "GFDL-1.3 (Qt documentation)"),
    Group("deb:pspp", "pspp", ("usr/share/info/pspp-figures/*.png", "usr/share/info/screenshots/*.png"), 35, "screenshot",
          None, "GFDL-1.3 (PSPP manual)"),
    Group("deb:xschem-doc", "xschem", ("usr/share/doc/xschem/xschem_man/*.png",), 35, "screenshot", None,
          "GPL-2+ (xschem manual)"),
    Group("deb:geomview-doc", "geomview", ("usr/share/doc/geomview/html/figs/*.png",), None, "screenshot", None,
          "GPL-2+ (Geomview manual)"),
    Group("deb:scilab-xcos", "scilab-data", ("usr/share/scilab/modules/xcos/images/palettes/*.png",), 30, "diagram", None,
          "GPL-2+ (Scilab Xcos palettes)"),
    # Shaded cartoon clipart on white (keep; openclipart's and ImageMagick's kind) and dark painted title art.
    Group("deb:pysiogame-art", "pysiogame", ("usr/share/games/pysiogame/res/images/art4apps/**/*.jpg",
          "usr/share/games/pysiogame/res/images/art4apps/**/*.png"), 40, "clipart", None,
          "public domain / see copyright (pysiogame images)", photo_category="art", jpeg=True),
    Group("deb:crawl-titles", "crawl-tiles-data", ("usr/share/crawl/dat/tiles/title_*.png",), 15, "art", None,
          "GPL-2+ / CC0 (Dungeon Crawl Stone Soup; see crawl-common copyright)", photo_category="art", jpeg=True),
    Group("deb:pil-doc", "python-pil-doc", ("usr/share/doc/python-pil-doc/**/*.png", "usr/share/doc/python-pil-doc/**/*.jpg"), None,
          "diagram", None, "HPND (Pillow docs)"),
]


@functools.lru_cache(maxsize=None)
def package_version(pkg: str) -> str:
    out = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True).stdout
    m = re.search(r"Candidate:\s*(\S+)", out)
    return m.group(1) if m else "?"


def fetch_packages(cache: Path, pkgs) -> dict[str, Path]:
    """apt-get download + dpkg -x into the cache; returns {pkg: extracted root}. No system install."""
    debs, roots = cache / "debs", {}
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in pkgs if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        log.info("apt-get download %s", " ".join(missing))
        subprocess.run(["apt-get", "download", "-q", *missing], cwd=debs, check=True, capture_output=True)
    for p in pkgs:
        found = sorted(debs.glob(f"{p}_*.deb"))
        if not found:
            log.warning("package %s could not be downloaded; its groups are skipped", p)
            continue
        root = cache / "x" / p
        stamp = root / ".extracted"
        if not stamp.exists() or stamp.read_text() != found[-1].name:
            root.mkdir(parents=True, exist_ok=True)  # dpkg -x makes the last folder, not its parents
            subprocess.run(["dpkg", "-x", str(found[-1]), str(root)], check=True)
            stamp.write_text(found[-1].name)
        roots[p] = root
    return roots


def _matches(root: Path, g: Group) -> list[Path]:
    seen, out = set(), []
    rx = re.compile(g.exclude) if g.exclude else None
    for pat in g.globs:
        for p in sorted(root.glob(pat)):
            rel = p.relative_to(root).as_posix()
            if rel in seen or not p.is_file() or p.is_symlink():
                continue
            if rx and rx.search("/" + rel):
                continue
            ext = p.suffix.lower()
            if ext not in RASTER_EXT and ext not in (".svg", ".svgz", ".pdf"):
                continue
            if p.stat().st_size > MAX_BYTES or p.stat().st_size < 200:
                continue
            seen.add(rel)
            out.append(p)
    if g.one_per_name:
        by_name = {}
        for p in out:
            by_name.setdefault(p.stem, p)
        out = list(by_name.values())
    return out


def candidates(cache: Path, groups=GROUPS) -> list[Candidate]:
    roots = fetch_packages(cache, sorted({g.pkg for g in groups}))
    cands = []
    for g in groups:
        if g.pkg not in roots:
            continue
        root = roots[g.pkg]
        files = _matches(root, g)
        if g.pdf_pages:
            pages = []
            for f in sample(files, 200, key=lambda p: p.relative_to(root).as_posix()):
                n = pdf_pages(f)
                picks = sorted(range(1, n + 1), key=lambda i: path_key(f"{f.name}#{i}"))[: g.pdf_pages]
                pages += [(f, i) for i in sorted(picks)]
            chosen = sample(pages, g.n, key=lambda fp: f"{fp[0].relative_to(root).as_posix()}#{fp[1]}")
        else:
            chosen = [(f, 0) for f in sample(files, g.n, key=lambda p: p.relative_to(root).as_posix())]
        log.info("%s: %d of %d files", g.source, len(chosen), len(files))
        ver = package_version(g.pkg)
        for f, page in sorted(chosen, key=lambda fp: (str(fp[0]), fp[1])):
            rel = f.relative_to(root).as_posix()
            ext = f.suffix.lower()
            if page:
                loader = functools.partial(load_pdf_page, f, page)
                rel = f"{rel}#page={page}"
            elif ext in (".svg", ".svgz"):
                loader = functools.partial(load_svg, f, g.svg_width)
            else:
                loader = functools.partial(load_raster, f)
            cands.append(Candidate(
                source=g.source, origin=f"{g.pkg}={ver}:/{rel}", licence=g.licence, loader=loader,
                label=g.label, category=g.category, rule=f"rule:{g.category}" if g.label else "",
                heuristic=None if g.label else g.category, photo_like=g.photo_category,
                extra={"jpeg": g.jpeg},
            ))
    return cands
