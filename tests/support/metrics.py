"""GET /metrics of the in-process server, parsed with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import Server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: Server, token: str | None = None) -> Samples:
    """Every sample of GET /metrics, by name and labels (each must appear once)."""
    status, text, headers = await server.request("GET", "/metrics", token=token)
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"{key} twice"
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; a labelled gauge that has no sample for these labels is 0."""
    return samples.get((name, frozenset(labels.items())), 0.0)
