"""Open the built book in headless Chromium and check what a reader sees on every page.

Needs ``make book`` first (``make test`` does it) and Debian's ``chromium``;
skips with the reason when either is missing outside CI, fails under CI.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "book" / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ROOT / "screenshots"  # git-ignored
pytestmark = pytest.mark.browser


def _need(cond: bool, reason: str):
    if not cond:
        if os.environ.get("CI"):
            pytest.fail(reason + " (required under CI)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def site():
    _need(HTML.joinpath("index.html").exists(), f"no built book at {HTML}: run `make book`")
    _need(CHROMIUM is not None, "Chromium is not installed (apt-get install chromium)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def _pages() -> list[str]:
    return sorted(str(p.relative_to(HTML)) for p in HTML.rglob("*.html")
                  if not p.relative_to(HTML).parts[0].startswith("_") and p.name not in ("search.html", "genindex.html"))


def test_every_page(site, browser):
    pages = _pages()
    assert "index.html" in pages
    SHOTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    failures = []
    nav_links = None
    for rel in pages:
        page.goto(urljoin(site, rel), wait_until="networkidle")
        # MathJax typesets asynchronously: wait for it where the page has math
        has_math = page.evaluate("document.querySelectorAll('.math, div.math, span.math').length") > 0
        if has_math:
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
            page.evaluate("MathJax.startup.promise")
            if page.evaluate("document.querySelectorAll('mjx-container').length") == 0:
                failures.append(f"{rel}: math present but nothing typeset by MathJax")
        text = page.inner_text("article") if page.query_selector("article") else page.inner_text("body")
        for raw in ("$$", "\\[", "\\begin{", "\\frac"):
            if raw in text:
                failures.append(f"{rel}: raw TeX {raw!r} visible")
        broken = page.evaluate(
            "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        failures += [f"{rel}: image did not load: {s}" for s in broken]
        hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
        for h in hrefs:
            u = urlparse(h)
            if u.scheme.startswith("http") and u.netloc == urlparse(site).netloc:
                target = HTML / u.path.lstrip("/")
                if target.is_dir():
                    target = target / "index.html"
                if not target.exists():
                    failures.append(f"{rel}: broken internal link {u.path}")
        if rel == "index.html":
            nav_links = page.evaluate(
                "[...document.querySelectorAll('nav.bd-docs-nav a.reference.internal')].map(a => a.getAttribute('href'))")
        page.screenshot(path=str(SHOTS / (rel.replace("/", "_") + ".png")), full_page=False)
    assert not failures, "\n".join(failures)
    # the navigation lists every chapter of the table of contents
    import yaml

    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())

    def files(entries):
        for e in entries:
            if "file" in e:
                yield e["file"]
            yield from files(e.get("sections", []))
            for part in e.get("chapters", []):
                yield from files([part])

    chapters = list(files(toc.get("chapters", []) + [c for p in toc.get("parts", []) for c in p["chapters"]]))
    assert chapters
    missing = [c for c in chapters if not any(h and h.split("#")[0].endswith(c + ".html") for h in nav_links or [])]
    assert not missing, f"chapters missing from the navigation: {missing}"


PHONE_TEXT_PX = 8  # the smallest figure text on a 420 px phone (book/_static/lvae.css keeps figures above it)

# what a reader sees, measured in the page (issue 20): one JS pass per page and width
READER_JS = r"""() => {
  const vw = window.innerWidth, art = document.querySelector('article') || document.body;
  const body_px = parseFloat(getComputedStyle(art.querySelector('p') || art).fontSize);
  const imgs = [...art.querySelectorAll('img')].filter(i => i.naturalWidth > 200).map(i => {
    const f = i.closest('figure'), c = f && f.querySelector('figcaption');
    let caption = c ? c.innerText : null;
    if (caption === null) {  // a figure pasted from another page ({glue} with :doc:): its caption is the paragraph after it
      let blk = i;
      while (blk.parentElement && blk.parentElement !== art && blk.parentElement.tagName !== 'SECTION') blk = blk.parentElement;
      const next = blk.nextElementSibling;
      if (next && next.tagName === 'P') caption = next.innerText;
    }
    return {src: i.src.split('/').pop(), nat: i.naturalWidth, shown: i.getBoundingClientRect().width, caption};
  });
  const pre_overflow = [...art.querySelectorAll('pre')].filter(p => p.offsetParent && p.scrollWidth > p.clientWidth + 1)
    .map(p => p.innerText.slice(0, 60));
  const wide_tables = [...art.querySelectorAll('table')].filter(t => t.offsetParent).map(t => {
    const box = t.closest('div.cell_output, div.output') || t.parentElement;
    return {w: Math.round(t.getBoundingClientRect().width), box: box.clientWidth,
            head: [...t.querySelectorAll('th')].slice(0, 3).map(h => h.innerText).join(' | ')};
  }).filter(r => r.w > r.box + 1);
  // an equation or table wider than the column must scroll inside a box of its own, and begin inside it
  // (a centred equation wider than its box would be cut at its left edge)
  const scrolls = e => { for (let a = e; a && a !== art; a = a.parentElement)
    if (/(auto|scroll)/.test(getComputedStyle(a).overflowX) && a.scrollWidth > a.clientWidth) return a; return null; };
  const col = art.getBoundingClientRect();
  const cut_off = [...art.querySelectorAll('mjx-container[display="true"], table')].filter(e => e.offsetParent).filter(e => {
    const r = e.getBoundingClientRect(), box = scrolls(e);
    if (r.width > col.width + 1) return !box || r.left < box.getBoundingClientRect().left - 1;
    const left = Math.min(r.left, ...[...e.querySelectorAll('*')].map(k => k.getBoundingClientRect())
      .filter(k => k.width > 0).map(k => k.left));
    return left < r.left - 1 || (e.scrollWidth > e.clientWidth + 1 && !/(auto|scroll)/.test(getComputedStyle(e).overflowX));
  }).map(e => e.tagName + ': ' + e.innerText.replace(/\s+/g, ' ').slice(0, 40));
  const params = [...document.querySelectorAll('.tag_parameters')].filter(e => e.offsetParent !== null).length;
  const cut = [...art.querySelectorAll('td, th')].map(c => c.innerText.trim()).filter(t => /(…|\.\.\.)$/.test(t));
  // a budget column holding a bare budget name, which the tables also use for the published numbers ("paper")
  const bare_paper = [...art.querySelectorAll('table')].filter(t => {
    const col = [...t.querySelectorAll('thead th, tr:first-child th')].findIndex(h => /^(budget|trained for)$/.test(h.innerText.trim()));
    return col >= 0 && [...t.querySelectorAll('tbody tr')].some(r => { const c = r.children[col];
      return c && !c.querySelector('code') && /^(paper|cpu|smoke)$/.test(c.innerText.trim()); });
  }).length;
  const cites = [...art.querySelectorAll('a[href*="references.html#"]')].map(a => a.getAttribute('href').split('#')[1]);
  return {body_px, imgs, pre_overflow, wide_tables, params, cut, cites, bare_paper, cut_off, page_overflow: document.documentElement.scrollWidth - vw,
          text: art.innerText};
}"""


def test_what_a_reader_sees(site, browser):
    """Figures with captions naming their budget, shown at the size they were drawn (so their 12 pt text
    is at least the body text's size); no parameter cell, no code or table running off the column at 1400 px, no
    page wider than a 420 px phone, no table cell cut short with an ellipsis, every citation resolved."""
    from lvae_lib import plots

    failures, cited = [], set()
    for width in (1400, 420):
        page = browser.new_page(viewport={"width": width, "height": 900})
        for rel in _pages():
            page.goto(urljoin(site, rel), wait_until="networkidle")
            m = page.evaluate(READER_JS)
            if m["page_overflow"] > 1:
                failures.append(f"{rel} at {width} px: the page scrolls sideways by {m['page_overflow']} px")
            if m["params"]:
                failures.append(f"{rel}: a parameter cell is visible")
            failures += [f"{rel}: table cell cut short: {t!r}" for t in m["cut"]]
            if m["bare_paper"]:
                failures.append(f"{rel}: a table's budget column holds a bare budget name (\"paper\" is also the published numbers)")
            failures += [f"{rel} at {width} px: cut off, not scrolling in its own box: {t!r}" for t in m["cut_off"]]
            if width != 1400:  # a phone: figures scroll in their box rather than shrink below 8 px text
                for im in m["imgs"]:
                    if (text_px := plots.FONT_PT * plots.DPI / 72 * im["shown"] / im["nat"]) < PHONE_TEXT_PX and im["nat"] > 500:
                        failures.append(f"{rel} at {width} px: {im['src']} is shrunk to {im['shown']:.0f} px, its text "
                                        f"{text_px:.1f} px")
                continue
            cited |= set(m["cites"])
            failures += [f"{rel}: code runs off the column: {t!r}" for t in m["pre_overflow"]]
            # every table fits its column at 1400 px (on a phone it scrolls inside its own box: page_overflow)
            failures += [f"{rel}: a table is {t['w']} px wide in a {t['box']} px column ({t['head']} ...)"
                         for t in m["wide_tables"]]
            for im in m["imgs"]:
                text_px = plots.FONT_PT * plots.DPI / 72 * im["shown"] / im["nat"]
                if text_px < m["body_px"] - 0.01:
                    failures.append(f"{rel}: {im['src']} is shrunk to {im['shown']:.0f} of {im['nat']} px: its text "
                                    f"is {text_px:.1f} px against the body's {m['body_px']:.1f} px")
                if rel in ("intro.html", "index.html"):  # the report's figure pasted on the first page; its caption is the text
                    if not re.search(r"\d+ epochs", m["text"]):
                        failures.append("intro.html: the pasted result figure has no line naming its budget")
                elif im["caption"] is None:
                    failures.append(f"{rel}: {im['src']} has no caption")
                elif re.match(r"\s*Fig\. \d+", im["caption"]):  # Sphinx's own count beside the paper's number
                    failures.append(f"{rel}: the caption of {im['src']} starts with a sequential number: {im['caption'][:40]!r}")
                elif rel != "notebooks/ladder_merge.html" and not re.search(r"\d+ epochs", im["caption"]):
                    failures.append(f"{rel}: the caption of {im['src']} names no budget: {im['caption'][:80]!r}")
        page.close()
    # every citation points at an entry of the bibliography
    page = browser.new_page()
    page.goto(urljoin(site, "references.html"), wait_until="networkidle")
    ids = set(page.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)"))
    page.close()
    assert cited, "no page cites anything"
    failures += [f"citation #{c} has no entry in references.html" for c in sorted(cited - ids)]
    assert not failures, "\n".join(failures)
