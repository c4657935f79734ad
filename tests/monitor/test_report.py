"""The HTML report: every chart, self-contained, escaped, written where asked."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from lakehouse import names
from lakehouse.errors import ConfigError, LakeError
from lakehouse.lake import Lake
from lakehouse.monitor.report import CHARTS, write_report

from .conftest import DAY1, DAY2, healthy_runs, run, write_runs

# Anything a browser would fetch: src/href/action/poster/data attributes, CSS url() and
# @import, xlink:href; data: URIs and in-page anchors are fine.
RESOURCE = re.compile(
    r"""(?:\b(?:src|href|action|poster|data|srcset)\s*=\s*["']?\s*(?!#|data:)[a-z]+:"""
    r"""|url\(\s*["']?\s*(?!#|data:)[a-z]+:|@import)""", re.I)


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.ids.update(v for k, v in attrs if k == "id" and v)


def parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def assert_self_contained(html: str) -> None:
    tags = parse(html)
    assert not RESOURCE.search(html), RESOURCE.search(html).group(0)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(tags.tags)
    assert "http://" not in html and "https://" not in html


def test_the_report_has_every_chart_and_opens_offline(lake_settings):
    write_runs(lake_settings, *healthy_runs(DAY1), *healthy_runs(DAY2),
               run("build", names.STD_USERS, DAY2, names.FAILED,
                   error="<script>alert(1)</script> check failed"),
               run("build", names.STD_TRACKS, DAY2, rows_in=50, quarantined=5, records=45,
                   details={"quarantine_reasons": {"bad duration": 3, "no name": 2}}))
    path = write_report(lake_settings)
    assert path.parent == lake_settings.reports_dir and path.suffix == ".html"
    html = path.read_text()
    tags = parse(html)
    missing = [c for c in CHARTS if f"chart-{c}" not in tags.ids]
    assert not missing
    assert html.count("<svg") >= len(CHARTS)
    assert_self_contained(html)
    # Data is escaped, never markup.
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    # Real data made it into the charts and tables.
    assert "bad duration" in html and "check failed" in html
    assert 'id="chart-runs"' in html and "<rect" in html.split('id="chart-runs"')[1][:3000]


def test_an_empty_lake_still_gets_every_chart_as_a_placeholder(lake_settings, tmp_path):
    Lake(lake_settings.lake)
    out = tmp_path / "out" / "r.html"
    path = write_report(lake_settings, out)
    assert path == out
    html = path.read_text()
    assert all(f'id="chart-{c}"' in html for c in CHARTS)
    assert "no data yet" in html or "no runs yet" in html
    assert_self_contained(html)


def test_out_may_be_a_folder_and_errors_are_actionable(lake_settings, tmp_path):
    with pytest.raises(LakeError, match="no lake"):
        write_report(lake_settings)
    Lake(lake_settings.lake)
    assert write_report(lake_settings, tmp_path).parent == tmp_path
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write the report"):
        write_report(lake_settings, blocker / "r.html")


@pytest.mark.slow
def test_the_report_of_the_trained_sample_lake_draws_real_charts(trained_lake, tmp_path):
    html = write_report(trained_lake, tmp_path / "r.html").read_text()
    assert_self_contained(html)
    for chart in CHARTS:
        if chart.startswith("quarantine"):
            continue  # the sample data may have nothing to quarantine
        if chart == "online_precision":
            continue  # one score date, no later ingest date: nothing to measure yet
        body = html.split(f'id="chart-{chart}"')[1].split("</figure>")[0]
        assert "<circle" in body or "<rect x=\"" in body and 'class="empty"' not in body, chart
    assert "champion" in html


def test_the_report_opens_the_lake_once_and_reads_the_run_log_once(trained_lake, monkeypatch):
    from lakehouse import lake as lake_module
    from lakehouse.monitor import kpis, report, runs, status

    opened, reads = [], []
    init, read = lake_module.Lake.__init__, runs.read_runs

    def counting_init(self, *a, **k):
        opened.append(a)
        init(self, *a, **k)

    def counting_read(*a, **k):
        reads.append(a)
        return read(*a, **k)

    monkeypatch.setattr(lake_module.Lake, "__init__", counting_init)
    for module in (report, kpis, status):
        monkeypatch.setattr(module, "read_runs", counting_read)
    html = report.render_report(trained_lake)
    assert "chart-users" in html and "Recent alerts" in html
    assert len(opened) == 1 and len(reads) == 1
@pytest.mark.parametrize("where", ["raw/users/_delta_log/00000000000000000000.json",
                                   "models/aliases.json", "meta/runs"])
def test_report_refuses_to_write_into_tables_or_the_registry(tmp_path, where):
    # Issue 11: nothing typed at a command may replace a file of the lake.
    from lakehouse.errors import ConfigError
    from lakehouse.monitor.report import write_report
    from tests.conftest import settings_for

    settings = settings_for(tmp_path / "lake")
    target = settings.lake / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("precious")
    with pytest.raises(ConfigError, match="refusing to write the report"):
        write_report(settings, target)
    assert target.read_text() == "precious"
