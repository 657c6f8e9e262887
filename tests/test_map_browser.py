"""The map page of the movies quickstart, in a real headless Chromium: it draws, logs no error,
shows a row on hover and searches its labels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import embedsql
from embedsql.cli import cli

from browser import Browser, chromium_or_skip
from helpers import fetch

SHOW = "select title, genres from movies"


@pytest.fixture
def movies_page(movies_db: Path, tmp_path: Path) -> Path:
    """The quickstart's job (the offline model) and the README's map command on it."""
    embedsql.run("select movieId, genres from movies", db=movies_db)
    page = tmp_path / "movies_map.html"
    result = CliRunner().invoke(
        cli, ["map", "movies_embeddings", "--show", SHOW, "-o", str(page), "--db", str(movies_db)]
    )
    assert result.exit_code == 0, result.output
    return page


def test_the_movies_page_draws_hovers_and_searches(movies_page: Path, movies_db: Path) -> None:
    executable = chromium_or_skip()
    with Browser(executable) as browser:
        browser.open(movies_page)
        browser.wait_for(
            lambda: (browser.evaluate("window.embedsqlMap && window.embedsqlMap.frames") or 0) > 0, "a frame"
        )
        assert browser.evaluate("window.embedsqlMap.rows") == 62_423

        # The plot drew points: many coloured pixels, in many colours, where a blank canvas is white.
        shot = Image.open(io.BytesIO(browser.screenshot())).convert("RGB")
        assert shot.size == (1200, 800)
        pixels = np.asarray(shot).reshape(-1, 3).astype(int)
        coloured = pixels[pixels.max(axis=1) - pixels.min(axis=1) > 40]  # not white, grey or black text
        assert len(coloured) > 2_000
        assert len({tuple(p) for p in coloured}) > 20

        # Hover the point of the first movie: the tooltip shows the row under the mouse.
        x, y = browser.evaluate("window.embedsqlMap.screenOf(0)")
        browser.move_mouse(x, y)
        browser.wait_for(lambda: browser.evaluate("window.embedsqlMap.hovered") >= 0, "the hover")
        hovered = browser.evaluate("window.embedsqlMap.hovered")
        movie_id, title, genres = fetch(
            movies_db, f"SELECT movieId, title, genres FROM movies ORDER BY movieId LIMIT 1 OFFSET {hovered}"
        )[0]
        cluster, label = fetch(
            movies_db, f"SELECT cluster, cluster_label FROM movies_embeddings_map WHERE movieId = {movie_id}"
        )[0]
        tooltip = browser.evaluate("document.getElementById('tooltip').innerText")
        assert tooltip.splitlines() == [
            f"movieId: {movie_id}",
            f"cluster: {cluster}",
            f"cluster_label: {'NULL' if label is None else label}",
            f"title: {title}",
            f"genres: {genres}",
        ]
        # Rows with the same vector share a point: the one hovered has the first movie's genres.
        assert genres == fetch(movies_db, "SELECT genres FROM movies ORDER BY movieId LIMIT 1")[0][0]

        # Typing in the search box keeps the clusters whose label holds the text lit, and dims the rest.
        browser.evaluate("document.getElementById('search').focus()")
        browser.call("Input.insertText", text="horror")
        browser.wait_for(lambda: browser.evaluate("window.embedsqlMap.lit") < 62_423, "the search")
        expected = fetch(
            movies_db, "SELECT count(*) FROM movies_embeddings_map WHERE contains(lower(cluster_label), 'horror')"
        )[0][0]
        assert browser.evaluate("window.embedsqlMap.lit") == expected
        assert expected > 0
        found = browser.evaluate("document.getElementById('found').textContent")
        assert found.endswith(f"label(s), {expected:,} row(s)")

        assert browser.errors() == []
