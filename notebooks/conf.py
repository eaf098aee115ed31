"""Sphinx configuration of the static site (`make book`): a landing page, the committed, already
executed notebooks 00-09 (rendered by MyST-NB with the Sphinx Book Theme; nothing is re-run),
the README, the guide and the references.

The site must load nothing from outside the machine that serves it (tests/test_site.py checks
every request in Chromium): no CDN (widget JavaScript, MathJax), no fonts or analytics from
elsewhere, no launch buttons. Math (MyST's dollar math) is rendered in the browser by the KaTeX
in _static/katex (Debian's libjs-katex, served with the site); a page that would load MathJax
from a CDN fails the build (`_no_cdn_mathjax`). Every notebook's code cells are collapsed
(`_hide_code`): a page opens on its prose, figures and tables, and a toggle shows the code.
"""

from __future__ import annotations

import json
import re
from datetime import date

project = "Using both views: an executable companion to Wu et al., MIDL 2020"
author = "the mvlib contributors"
copyright = f"{date.today().year}, {author}"

extensions = ["myst_nb", "sphinxcontrib.bibtex", "sphinx_book_theme"]

# Pages: the landing page, the numbered notebooks, the README, the guide and the references;
# nothing else that lies in the folder (a copy papermill is writing, checkpoints, scratch).
root_doc = "index"
include_patterns = ["index.md", "readme.md", "guide.md", "references.md", "[0-9][0-9]_*.ipynb"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "**.running.ipynb", "*.running.ipynb",
                    "**/_static"]

# MyST-NB: the committed outputs as they are.
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no widget manager from a CDN (no notebook has widget outputs)
nb_merge_streams = True
# text/markdown outputs (the notebooks' generated tables and verdicts) as MyST, not CommonMark:
# tables render, and the results page's `NN_name.ipynb#in-closing` links become page links
nb_render_markdown_format = "myst"
myst_heading_anchors = 3  # `NN_name.ipynb#in-closing` (the results page's links) resolve
myst_enable_extensions = ["dollarmath"]  # $...$ and $$...$$, rendered by the local KaTeX
mathjax_path = "katex/render.js"  # Sphinx's math script on pages with math: KaTeX, not MathJax
nb_code_prompt_show = "Show the code"
nb_code_prompt_hide = "Hide the code"

# Figures that nbsite gives a caption are numbered "Fig. NN.k": notebook NN, its k-th figure.
numfig = True
numfig_format = {"figure": "Fig. %s", "table": "Table %s", "code-block": "Listing %s",
                 "section": "Section %s"}

bibtex_bibfiles = ["references.bib"]
bibtex_reference_style = "super"  # "Lan et al. 2019¹": the notebooks keep their own wording
bibtex_default_style = "unsrt"

nitpicky = True

html_theme = "sphinx_book_theme"
html_title = "Using both views (Wu et al., MIDL 2020)"
html_static_path = ["_static"]
html_css_files = ["site.css", "katex/katex.min.css"]  # room for the wide tables; math
html_js_files = ["katex/katex.min.js", "katex/contrib/auto-render.js"]
html_favicon = "_static/favicon.svg"  # else the browser asks for /favicon.ico, which 404s
html_last_updated_fmt = None
html_copy_source = True
html_show_sourcelink = False
# pydata-sphinx-theme logs a console error without a default mode; light reads as the figures do
html_context = {"default_mode": "light"}
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    # no right-hand "on this page" column: its width goes to the figures and tables (the
    # sidebar on the left lists the pages, each page's headings are in its text)
    "secondary_sidebar_items": [],
    "use_download_button": True,  # the page's .ipynb / .md, from this site
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "use_issues_button": False,
    "use_edit_page_button": False,
    "use_source_button": False,
    "launch_buttons": {},  # no Binder, Colab or Thebe: they load from elsewhere
    "navigation_with_keys": False,
    "icon_links": [],
}


def _renumber_figures(app, env):
    """Number each notebook's figures NN.1, NN.2, ... (Sphinx numbers them across the site)."""
    for docname, types in env.toc_fignumbers.items():
        m = re.match(r"(\d\d)_", docname)
        figures = types.get("figure")
        if not m or not figures:
            continue
        order = sorted(figures, key=lambda i: figures[i])
        for k, figure_id in enumerate(order, start=1):
            figures[figure_id] = (m.group(1), k)
    return []


def _no_cdn_mathjax(app, pagename, templatename, context, doctree):
    """Fail the build (a warning under -W) where a page would load MathJax from a CDN."""
    if context.get("has_maths_elements") and app.config.mathjax_path.startswith("http"):
        from sphinx.util import logging

        logging.getLogger(__name__).warning(
            "%s has math: MathJax would load from %s; the site must stay offline "
            "(serve a local copy with mathjax_path, or remove the math)",
            pagename, app.config.mathjax_path, location=pagename)


def _hide_code(app, docname, source):
    """Collapse every code cell of a notebook (MyST-NB's hide-input tag), without editing the
    committed notebooks: the page opens on its results and a toggle shows the code."""
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    nb = json.loads(source[0])
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "hide-input" not in tags:
                tags.append("hide-input")
    source[0] = json.dumps(nb)


def setup(app):
    app.connect("source-read", _hide_code)
    app.connect("env-get-updated", _renumber_figures, priority=900)  # after Sphinx's numbering
    app.connect("html-page-context", _no_cdn_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
